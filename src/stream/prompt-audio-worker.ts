// Worker thread that decodes and resamples uploaded audio prompts, so that a long or odd-rate prompt
// (filter design at an unusual rate takes hundreds of ms) never blocks the thread that serves sockets.
import { parentPort } from 'node:worker_threads';
import { type DecodeAudioOptions, decodeToMono } from './audio-file.ts';

export interface PromptAudioRequest {
  id: number;
  bytes: Uint8Array;
  targetRate: number;
  options: DecodeAudioOptions;
}

export type PromptAudioReply = { id: number; audio: Float32Array } | { id: number; error: { code?: string; message: string } };

const port = parentPort!;
port.on('message', (msg: PromptAudioRequest) => {
  decodeToMono(msg.bytes, msg.targetRate, msg.options).then(
    (audio) => port.postMessage({ id: msg.id, audio } satisfies PromptAudioReply, [audio.buffer as ArrayBuffer]),
    (err: Error & { code?: string }) =>
      port.postMessage({ id: msg.id, error: { code: err.code, message: err.message } } satisfies PromptAudioReply),
  );
});
