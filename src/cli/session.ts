// `riverrun session`: open a personal stream on a Riverrun server, record it (Ogg Opus or WAV, as
// `riverrun listen` does), and steer it with lines typed on standard input.
import { createInterface } from 'node:readline';
import type { GenerationConfig, PlaybackAction, RiverrunClient, WeightedPrompt } from '../../clients/sdk/index.ts';
import { CONFIG_RANGES, type NumberRange, TRANSITION_MS_RANGE, WEIGHT_RANGE } from '../protocol/limits.ts';
import { parseCommandLine } from './command-line.ts';
import { checkUrl, DEFAULT_URL, outputFormat, parseSeconds, record } from './listen.ts';

const STEERING_HELP = `Steering lines (one per line on standard input; keywords are case-insensitive, "KEY: VALUE",
"KEY VALUE" and "KEY=VALUE" are the same; blank lines and lines starting with # are ignored):
  prompt: TEXT                      replace the prompts with one prompt (weight 1)
  prompt: TEXT @ W; TEXT2 @ W2      replace the prompts with a weighted list (weights are relative,
                                    0..100; a prompt without @ W has weight 1)
  add: TEXT [@ W]                   add a prompt (or change its weight), keeping the others
  remove: TEXT                      drop a prompt
  weight: TEXT @ W                  change the weight of a prompt already there
  transition MS                     cross-fade length of the next prompt changes (0..60000, default 0)
  temperature X | topk N | topp X | guidance X | seed N
                                    change one config value (the others stay as set before)
  defaults                          every config value back to its default
  play | pause | stop | reset       playback (reset = reset_context: forget the musical context)
  help                              this text
In prompt texts, write \\; for ; and \\@ for @. A malformed line is reported on standard error and ignored.`;

const SESSION_USAGE = `Usage: riverrun session [--url ws://HOST:PORT] [--prompt PROMPTS] [--seconds N] [--token T]
                        --out FILE.ogg|FILE.wav [--transition MS] [--temperature X] [--top-k N]
                        [--top-p X] [--guidance X] [--seed N]

Open a personal stream on a Riverrun server, record it, and steer it with lines on standard input.

  --url URL          server (default ws://localhost:8080; /v1/ws is added when the URL has no path)
  --prompt PROMPTS   starting prompts: "TEXT" or "TEXT @ W; TEXT2 @ W2" (default: the server's)
  --seconds N        stop after N seconds of audio; default: until Ctrl-C (end of input does not stop it)
  --token T          access token with the session role (env RIVERRUN_TOKEN)
  --out FILE         .ogg / .opus (the Opus packets as received) or .wav (decoded, 48 kHz float)
  --transition MS    default cross-fade of prompt changes, in ms (default 0)
  --temperature X, --top-k N, --top-p X, --guidance X, --seed N
                     starting generation config (omitted: the server's defaults)

${STEERING_HELP}`;

// ---------------------------------------------------------------------------------------------------
// Steering lines

type ConfigKey = keyof GenerationConfig;

export type SteeringCommand =
  | { kind: 'prompts'; prompts: WeightedPrompt[] }
  | { kind: 'add'; prompt: WeightedPrompt }
  | { kind: 'remove'; text: string }
  | { kind: 'weight'; text: string; weight: number }
  | { kind: 'transition'; ms: number }
  | { kind: 'config'; key: ConfigKey; value: number }
  | { kind: 'defaults' }
  | { kind: 'playback'; action: PlaybackAction }
  | { kind: 'help' };

const CONFIG_KEYWORDS: Readonly<Record<string, ConfigKey>> = {
  temperature: 'temperature',
  temp: 'temperature',
  topk: 'topK',
  'top-k': 'topK',
  top_k: 'topK',
  topp: 'topP',
  'top-p': 'topP',
  top_p: 'topP',
  guidance: 'guidance',
  seed: 'seed',
};

const PLAYBACK_KEYWORDS: Readonly<Record<string, PlaybackAction>> = {
  play: 'play',
  pause: 'pause',
  stop: 'stop',
  reset: 'reset_context',
  reset_context: 'reset_context',
  'reset-context': 'reset_context',
};

/** A number in `range`, or throws a message naming `what`. */
function numberIn(text: string, range: NumberRange, what: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`${what} needs a number, got ${JSON.stringify(text)}`);
  if (range.integer && !Number.isInteger(n)) throw new Error(`${what} must be an integer, got ${text}`);
  if (n < range.min || n > range.max) throw new Error(`${what} must be in ${range.min}..${range.max}, got ${text}`);
  return n;
}

/** Splits on each `sep` not preceded by a backslash; the parts keep their escapes. */
function splitRaw(text: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      cur += ch + text[i + 1]!;
      i++;
    } else if (ch === sep) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

/** `\x` → x. */
function unescapeText(text: string): string {
  return text.replace(/\\(.)/gs, '$1');
}

/** "TEXT" or "TEXT @ W" (\@ and \; stand for @ and ; in TEXT). */
function parseWeightedPrompt(item: string, requireWeight = false): WeightedPrompt {
  const parts = splitRaw(item, '@');
  if (parts.length > 2) throw new Error(`more than one @ in ${JSON.stringify(item.trim())} (write \\@ for a literal @)`);
  if (parts.length < 2 && requireWeight) throw new Error(`expected TEXT @ WEIGHT, got ${JSON.stringify(item.trim())}`);
  const text = unescapeText(parts[0]!).trim();
  if (text === '') throw new Error(`empty prompt text in ${JSON.stringify(item.trim())}`);
  const weight = parts.length === 2 ? numberIn(parts[1]!.trim(), WEIGHT_RANGE, 'a prompt weight') : 1;
  return { text, weight };
}

/** "A @ 1; B @ 0.5" → prompts; each text once, at least one weight above 0. */
export function parsePromptList(text: string): WeightedPrompt[] {
  const items = splitRaw(text, ';').filter((r) => r.trim() !== '');
  if (items.length === 0) throw new Error('no prompt given');
  const prompts = items.map((item) => parseWeightedPrompt(item));
  const seen = new Set<string>();
  for (const p of prompts) {
    if (seen.has(p.text)) throw new Error(`prompt ${JSON.stringify(p.text)} given twice`);
    seen.add(p.text);
  }
  if (!prompts.some((p) => p.weight > 0)) throw new Error('at least one prompt needs a weight above 0');
  return prompts;
}

/**
 * One steering line → a command; null for a blank line or a comment. Throws an Error whose message
 * says what is wrong with the line.
 */
export function parseSteeringLine(line: string): SteeringCommand | null {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const m = /^([A-Za-z_-]+)\s*(?:[:=]\s*|\s+|$)(.*)$/s.exec(trimmed);
  if (m === null) throw new Error(`cannot read ${JSON.stringify(trimmed)}; "help" lists the commands`);
  const keyword = m[1]!.toLowerCase();
  const rest = m[2]!.trim();
  const noArgument = (): void => {
    if (rest !== '') throw new Error(`${keyword} takes no argument (got ${JSON.stringify(rest)})`);
  };
  if (keyword === 'prompt' || keyword === 'prompts') return { kind: 'prompts', prompts: parsePromptList(rest) };
  if (keyword === 'add') {
    if (rest === '') throw new Error('add needs TEXT [@ WEIGHT]');
    return { kind: 'add', prompt: parseWeightedPrompt(rest) };
  }
  if (keyword === 'remove') {
    const text = unescapeText(rest).trim();
    if (text === '') throw new Error('remove needs the TEXT of a prompt');
    return { kind: 'remove', text };
  }
  if (keyword === 'weight') {
    if (rest !== '' && Number.isFinite(Number(rest))) {
      throw new Error('weights are relative (normalised over the prompts), so a weight alone changes nothing; write "weight: TEXT @ W"');
    }
    const p = parseWeightedPrompt(rest, true);
    return { kind: 'weight', text: p.text, weight: p.weight };
  }
  if (keyword === 'transition')
    return { kind: 'transition', ms: numberIn(rest.replace(/\s*ms$/i, ''), TRANSITION_MS_RANGE, 'transition (ms)') };
  const configKey = CONFIG_KEYWORDS[keyword];
  if (configKey !== undefined) return { kind: 'config', key: configKey, value: numberIn(rest, CONFIG_RANGES[configKey], keyword) };
  if (keyword === 'defaults') {
    noArgument();
    return { kind: 'defaults' };
  }
  const action = PLAYBACK_KEYWORDS[keyword];
  if (action !== undefined) {
    noArgument();
    return { kind: 'playback', action };
  }
  if (keyword === 'help') return { kind: 'help' };
  throw new Error(`unknown command ${JSON.stringify(m[1])}; "help" lists the commands`);
}

/** What the steering lines have set so far, and how to apply the next command through the client. */
class SteeringState {
  prompts: WeightedPrompt[];
  config: Partial<GenerationConfig>;
  transitionMs: number;

  constructor(prompts: WeightedPrompt[], config: Partial<GenerationConfig>, transitionMs: number) {
    this.prompts = prompts.map((p) => ({ ...p }));
    this.config = { ...config };
    this.transitionMs = transitionMs;
  }

  /** Applies one command: updates the state and sends what it changes. Returns a line for the log, or throws. */
  apply(cmd: SteeringCommand, client: RiverrunClient): string {
    switch (cmd.kind) {
      case 'prompts':
        return this.sendPrompts(cmd.prompts, client);
      case 'add': {
        const others = this.prompts.filter((p) => p.text !== cmd.prompt.text);
        const at = this.prompts.findIndex((p) => p.text === cmd.prompt.text);
        const next = at >= 0 ? this.prompts.map((p, i) => (i === at ? cmd.prompt : p)) : [...others, cmd.prompt];
        return this.sendPrompts(next, client);
      }
      case 'remove': {
        if (!this.prompts.some((p) => p.text === cmd.text))
          throw new Error(`no prompt ${JSON.stringify(cmd.text)} (prompts: ${describePrompts(this.prompts)})`);
        const next = this.prompts.filter((p) => p.text !== cmd.text);
        if (!next.some((p) => p.weight > 0)) throw new Error('that would leave no prompt with a weight above 0');
        return this.sendPrompts(next, client);
      }
      case 'weight': {
        if (!this.prompts.some((p) => p.text === cmd.text))
          throw new Error(`no prompt ${JSON.stringify(cmd.text)} (prompts: ${describePrompts(this.prompts)}); "add" adds one`);
        const next = this.prompts.map((p) => (p.text === cmd.text ? { text: p.text, weight: cmd.weight } : p));
        if (!next.some((p) => p.weight > 0)) throw new Error('at least one prompt needs a weight above 0');
        return this.sendPrompts(next, client);
      }
      case 'transition':
        this.transitionMs = cmd.ms;
        return `transition ${cmd.ms} ms for the next prompt changes`;
      case 'config':
        this.config = { ...this.config, [cmd.key]: cmd.value };
        return this.sendConfig(client);
      case 'defaults':
        this.config = {};
        return this.sendConfig(client);
      case 'playback': {
        const send = {
          play: () => client.play(),
          pause: () => client.pause(),
          stop: () => client.stop(),
          reset_context: () => client.resetContext(),
        }[cmd.action];
        return `${cmd.action}${send() ? '' : ' (not connected: sent when reconnected)'}`;
      }
      case 'help':
        return STEERING_HELP;
    }
  }

  private sendPrompts(prompts: WeightedPrompt[], client: RiverrunClient): string {
    this.prompts = prompts;
    const sent = client.setPrompts(prompts, this.transitionMs > 0 ? this.transitionMs : undefined);
    return `prompts ${describePrompts(prompts)}${this.transitionMs > 0 ? ` over ${this.transitionMs} ms` : ''}${sent ? '' : ' (not connected: sent when reconnected)'}`;
  }

  private sendConfig(client: RiverrunClient): string {
    const sent = client.setConfig(this.config);
    const fields = Object.entries(this.config).map(([k, v]) => `${k}=${v}`);
    return `config ${fields.length > 0 ? fields.join(' ') : '(defaults)'}${sent ? '' : ' (not connected: sent when reconnected)'}`;
  }
}

function describePrompts(prompts: readonly WeightedPrompt[]): string {
  return prompts.map((p) => `${JSON.stringify(p.text)} @ ${p.weight}`).join('; ');
}

// ---------------------------------------------------------------------------------------------------
// riverrun session

export async function runSession(args: string[]): Promise<void> {
  const line = parseCommandLine('session', SESSION_USAGE, args, {
    url: { type: 'string' },
    prompt: { type: 'string' },
    seconds: { type: 'string' },
    token: { type: 'string' },
    out: { type: 'string' },
    transition: { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    guidance: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!line) return;
  const { values, fail } = line;
  const check = <T>(f: () => T): T => {
    try {
      return f();
    } catch (err) {
      return fail((err as Error).message);
    }
  };
  if (!values.out) fail('--out FILE.ogg|FILE.wav is required');
  const format = outputFormat(values.out!) ?? fail(`--out must end in .ogg, .opus or .wav (got ${JSON.stringify(values.out)})`);
  const seconds = check(() => parseSeconds(values.seconds));
  const prompts = values.prompt === undefined ? [] : check(() => parsePromptList(values.prompt!));
  const transitionMs = values.transition === undefined ? 0 : check(() => numberIn(values.transition!, TRANSITION_MS_RANGE, '--transition'));
  const config: Partial<GenerationConfig> = {};
  const flags: [string, ConfigKey][] = [
    ['temperature', 'temperature'],
    ['top-k', 'topK'],
    ['top-p', 'topP'],
    ['guidance', 'guidance'],
    ['seed', 'seed'],
  ];
  for (const [flag, key] of flags) {
    const v = values[flag as 'temperature'];
    if (v !== undefined) config[key] = check(() => numberIn(v, CONFIG_RANGES[key], `--${flag}`));
  }
  const url = checkUrl(values.url ?? DEFAULT_URL, fail);
  const state = new SteeringState(prompts, config, transitionMs);

  await record({
    command: 'riverrun session',
    url,
    token: values.token ?? process.env.RIVERRUN_TOKEN,
    target: { session: { ...(prompts.length > 0 && { prompts }), ...(Object.keys(config).length > 0 && { config }) } },
    seconds,
    out: values.out!,
    format,
    attach: (client, log) => attachStdin(client, state, log),
  });
}

/** Reads steering lines from standard input until detached; never throws on a bad line. */
function attachStdin(client: RiverrunClient, state: SteeringState, log: (line: string) => void): () => void {
  const offApplied = client.on('applied', (m) =>
    log(
      `applied (control ${m.control}): ${describePrompts(m.prompts)}; ${Object.entries(m.config)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    ),
  );
  const offError = client.on('error', (e) => {
    if (e.fatal) return;
    // The server refused a change: go back to what is in effect, so the next line starts from there.
    if (client.applied !== null) {
      if (e.code === 'too_many_prompts' || e.code === 'prompt_too_long' || e.field?.startsWith('prompts'))
        state.prompts = client.applied.prompts.map((p) => ({ ...p }));
      if (e.field?.startsWith('config')) state.config = { ...client.applied.config };
    }
  });
  if (process.stdin.isTTY) log('type steering lines ("help" lists them); Ctrl-C to finish');
  const rl = createInterface({ input: process.stdin, terminal: false });
  let lineNo = 0;
  rl.on('line', (line) => {
    lineNo++;
    try {
      const cmd = parseSteeringLine(line);
      if (cmd === null) return;
      const said = state.apply(cmd, client);
      if (cmd.kind === 'help') process.stderr.write(`${said}\n`);
      else log(`> ${said}`);
    } catch (err) {
      log(`line ${lineNo} ignored: ${(err as Error).message}: ${JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)}`);
    }
  });
  return () => {
    offApplied();
    offError();
    rl.close();
    process.stdin.destroy();
  };
}
