// Game-engine bridge: a small Node process that turns game events into Riverrun prompts, with
// cross-fades, so the music follows the game ("combat" → intense drums, "explore" → calm ambient).
//
// Events come as lines of JSON on standard input and/or as HTTP POSTs to a local endpoint:
//   {"event": "combat"}                      switch mood (cross-fade of the mood's length)
//   {"event": "explore", "transitionMs": 500} ... with another cross-fade length
//   {"event": "pause"} / {"event": "play"}   playback
//   curl -d '{"event":"combat"}' http://127.0.0.1:7777/event
//
// Two ways to get the music to the game:
//  - personal session (default): the bridge receives the audio and writes it to standard output as raw
//    32-bit float stereo PCM at 48 kHz, e.g.
//      node --import tsx clients/sdk/examples/game-bridge.ts --http 7777 | ffplay -nodisp -f f32le -ar 48000 -ac 2 -
//    (in an engine: read the bridge's stdout into a streaming audio buffer);
//  - a channel (--channel ID --token OPERATOR_TOKEN): the bridge steers a channel as an operator and the
//    game plays http://HOST:PORT/v1/channels/ID.ogg with its ordinary streaming-audio player.
//
// Run from the repository root: node --import tsx clients/sdk/examples/game-bridge.ts --help
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type GenerationConfig, RiverrunClient, type WeightedPrompt } from '../index.ts';

interface Mood {
  prompts: WeightedPrompt[];
  /** Cross-fade into this mood, in ms. */
  transitionMs: number;
  /** Generation config for this mood (omitted fields: server defaults). */
  config?: Partial<GenerationConfig>;
}

/** Game state → music. Fast cross-fades into action, slow ones back to calm. */
const MOODS: Record<string, Mood> = {
  explore: {
    prompts: [
      { text: 'calm ambient', weight: 1 },
      { text: 'soft evolving pads', weight: 0.4 },
    ],
    transitionMs: 6000,
  },
  combat: {
    prompts: [
      { text: 'intense drums', weight: 1 },
      { text: 'driving distorted bass', weight: 0.6 },
    ],
    transitionMs: 1500,
    config: { guidance: 4 },
  },
  stealth: {
    prompts: [
      { text: 'tense minimal pulse', weight: 1 },
      { text: 'low drones', weight: 0.5 },
    ],
    transitionMs: 3000,
  },
  victory: { prompts: [{ text: 'triumphant orchestral fanfare', weight: 1 }], transitionMs: 1000 },
  menu: { prompts: [{ text: 'warm lofi piano', weight: 1 }], transitionMs: 4000 },
};

const USAGE = `Usage: game-bridge [--url ws://localhost:8080] [--http PORT] [--mood NAME] [--channel ID --token T]

  --url URL        Riverrun server (default ws://localhost:8080)
  --http PORT      also accept POST /event on 127.0.0.1:PORT (JSON body like a stdin line)
  --mood NAME      starting mood (default explore); moods: ${Object.keys(MOODS).join(', ')}
  --channel ID     steer channel ID as an operator instead of opening a personal session
  --token T        access token (an operator token with --channel)

Events: JSON lines on stdin, {"event": "combat"} (a mood), {"event": "pause"} or {"event": "play"}.`;

interface GameEvent {
  event: string;
  transitionMs?: number;
}

function parseEvent(text: string): GameEvent {
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== 'object' || typeof (value as { event?: unknown }).event !== 'string')
    throw new Error('expected {"event": "NAME"}');
  const { event, transitionMs } = value as { event: string; transitionMs?: unknown };
  if (transitionMs !== undefined && (typeof transitionMs !== 'number' || !(transitionMs >= 0 && transitionMs <= 60_000)))
    throw new Error('transitionMs must be a number in 0..60000');
  return { event, ...(typeof transitionMs === 'number' && { transitionMs }) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://localhost:8080' },
      http: { type: 'string' },
      mood: { type: 'string', default: 'explore' },
      channel: { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return;
  }
  const start = MOODS[values.mood];
  if (start === undefined) throw new Error(`unknown mood ${values.mood}; moods: ${Object.keys(MOODS).join(', ')}`);
  const log = (line: string): void => {
    process.stderr.write(`game-bridge: ${line}\n`);
  };

  const client = new RiverrunClient();
  let current = values.mood;
  client.on('setup', (s) =>
    log(`connected (${s.channel !== undefined ? `channel ${s.channel}` : `session ${s.sessionId}`}, ${s.model.name})`),
  );
  client.on('applied', (a) => log(`now playing: ${a.prompts.map((p) => `${p.text} (${p.weight})`).join(', ')}`));
  client.on('error', (e) => log(`server error ${e.code}: ${e.message}`));
  client.on('reconnecting', (r) => log(`connection lost; retrying in ${r.delayMs} ms`));

  // Audio of a personal session → raw f32le interleaved on stdout (not onto a terminal).
  const pipeAudio = values.channel === undefined && !process.stdout.isTTY;
  if (pipeAudio) {
    client.on('pcm', (frame) => {
      const left = frame.channelData[0];
      const right = frame.channelData[1] ?? left;
      if (left === undefined || right === undefined) return;
      const out = new Float32Array(frame.samples * 2);
      for (let i = 0; i < frame.samples; i++) {
        out[2 * i] = left[i]!;
        out[2 * i + 1] = right[i]!;
      }
      process.stdout.write(Buffer.from(out.buffer));
    });
  }

  const target =
    values.channel !== undefined
      ? { listen: values.channel }
      : { session: { prompts: start.prompts, ...(start.config && { config: start.config }) } };
  await client.connect({ url: values.url, token: values.token, decode: pipeAudio, waitForServer: true, ...target });
  if (values.channel !== undefined) {
    client.setPrompts(start.prompts, start.transitionMs);
    client.setConfig(start.config ?? {});
  }

  const handle = (e: GameEvent): string => {
    if (e.event === 'pause' || e.event === 'play') {
      if (e.event === 'pause') client.pause();
      else client.play();
      return e.event;
    }
    const mood = MOODS[e.event];
    if (mood === undefined) throw new Error(`unknown event ${JSON.stringify(e.event)}; moods: ${Object.keys(MOODS).join(', ')}`);
    if (e.event === current) return `already ${current}`;
    current = e.event;
    const transitionMs = e.transitionMs ?? mood.transitionMs;
    client.setPrompts(mood.prompts, transitionMs);
    client.setConfig(mood.config ?? {});
    return `${current} (cross-fade ${transitionMs} ms)`;
  };

  const rl = createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    try {
      log(handle(parseEvent(line)));
    } catch (err) {
      log(`ignored ${JSON.stringify(line)}: ${(err as Error).message}`);
    }
  });

  if (values.http !== undefined) {
    const http = createServer((req, res) => {
      if (req.method !== 'POST' || req.url !== '/event') {
        res.writeHead(404).end();
        return;
      }
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > 4096) req.destroy();
      });
      req.on('end', () => {
        try {
          const said = handle(parseEvent(body));
          log(said);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, mood: current }));
        } catch (err) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: (err as Error).message }));
        }
      });
    });
    http.listen(Number(values.http), '127.0.0.1', () => log(`POST game events to http://127.0.0.1:${values.http}/event`));
  }

  const shutdown = (): void => {
    log('bye');
    rl.close();
    process.stdin.destroy();
    void client.close().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`game-bridge: ${(err as Error).message}\n`);
  process.exit(1);
});
