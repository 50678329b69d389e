// Riverrun decode worker: Opus packets in (from the page), PCM out (straight to the jitter buffer's
// AudioWorklet through a MessagePort), so neither the audio thread nor the page's main thread decodes.
//
// One worker serves the page for its lifetime (started at the first user gesture, so the WASM is compiled
// before the first connection); each connection gets a fresh decoder.
// Messages from the page:
//   {type:'init', channels, preSkip, port, epoch}   a new connection; port: MessagePort to the worklet
//   {type:'audio', seq, pts, control, packets: Uint8Array[]}
//   {type:'stop'}                                    the connection is gone: drop what comes after
// PCM to the worklet: {type:'pcm', epoch, pts, control, channels: Float32Array[]} (buffers transferred).
// Posts to the page: {type:'ready'}, {type:'decoded', packets, frames, gaps, errors}, {type:'error', message}.
/* global importScripts */
importScripts('/vendor/opus-decoder.min.js');
const { OpusDecoder } = globalThis['opus-decoder'];

const FRAME = 960; // 20 ms at 48 kHz
/** A gap of up to this many packets is filled with silence to keep time; a longer one is skipped. */
const MAX_FILL_PACKETS = 50;

let decoder = null;
let out = null;
let channels = 2;
let preSkip = 0;
let epoch = 0;
let expectedSeq = null;
// Compile the WASM now (the library caches the compiled module): the first connection starts at once.
let chain = (async () => {
  const d = new OpusDecoder({ channels: 2, sampleRate: 48000 });
  await d.ready;
  d.free();
})();
const totals = { packets: 0, frames: 0, gaps: 0, lost: 0, errors: 0 };

self.onmessage = (e) => {
  const m = e.data;
  chain = chain.then(() => handle(m)).catch((err) => self.postMessage({ type: 'error', message: String(err?.message ?? err) }));
};

async function handle(m) {
  if (m.type === 'init' || m.type === 'stop') {
    decoder?.free();
    decoder = null;
    out?.close();
    out = null;
    expectedSeq = null;
    if (m.type === 'stop') return;
    channels = m.channels === 1 ? 1 : 2;
    preSkip = m.preSkip ?? 0;
    epoch = m.epoch;
    const d = new OpusDecoder({ channels, sampleRate: 48000, preSkip });
    await d.ready;
    decoder = d;
    out = m.port;
    self.postMessage({ type: 'ready', epoch });
    return;
  }
  if (m.type !== 'audio' || !decoder || !out) return;
  let { seq, pts } = m;
  let packets = m.packets.filter((p) => p && p.length > 0); // never feed an empty packet to the decoder
  if (expectedSeq !== null && seq < expectedSeq) {
    // Old or duplicate packets: keep only the new ones.
    const drop = expectedSeq - seq;
    if (drop >= packets.length) return;
    packets = packets.slice(drop);
    seq += drop;
    pts += drop * FRAME;
  }
  if (expectedSeq !== null && seq > expectedSeq) {
    const missing = seq - expectedSeq;
    totals.gaps++;
    totals.lost += missing;
    if (missing <= MAX_FILL_PACKETS) {
      const silence = new Float32Array(missing * FRAME);
      const chans = channels === 1 ? [silence] : [silence, new Float32Array(missing * FRAME)];
      out.postMessage(
        { type: 'pcm', epoch, pts: pts - missing * FRAME - preSkip, control: m.control, channels: chans },
        chans.map((c) => c.buffer),
      );
    }
  }
  expectedSeq = seq + packets.length;
  if (packets.length === 0) return;
  const { channelData, samplesDecoded, errors } = decoder.decodeFrames(packets);
  totals.packets += packets.length;
  totals.frames += samplesDecoded;
  totals.errors += errors.length;
  if (samplesDecoded > 0) {
    // The decoded samples of the packet with pts p are the generated audio from p - preSkip; the decoder
    // trims preSkip samples from its very first output, so the output ends where the last packet ends.
    const firstPts = pts + packets.length * FRAME - samplesDecoded - preSkip;
    const chans = channelData.slice(0, channels);
    out.postMessage(
      { type: 'pcm', epoch, pts: firstPts, control: m.control, channels: chans },
      chans.map((c) => c.buffer),
    );
  }
  self.postMessage({ type: 'decoded', ...totals });
}
