// Progress output shared by the commands that move gigabytes (model fetch, model tiny --preset small).

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** `[#####-----]  42%  1.0 GB / 2.5 GB  120.0 MB/s` (the rate once half a second has passed). */
export function progressBar(done: number, total: number, seconds: number, since = 0): string {
  const rate = seconds > 0.5 ? `  ${formatBytes((done - since) / seconds)}/s` : '';
  if (total <= 0) return `${formatBytes(done)}${rate}`;
  const frac = Math.min(1, done / total);
  const width = 24;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}${rate}`;
}
