// An uploaded clip as the start of a stream: its codec frames [frame][k], which the stream's history then
// continues from.
import type { ModelBundle } from '../models/model-bundle.ts';

/** Encodes mono audio at the codec's rate (padded to whole frames); at most `maxFrames` frames. */
export async function encodeAudioPrompt(model: ModelBundle, audio: Float32Array, maxFrames: number): Promise<number[][]> {
  const { hop } = model.config.codec;
  const K = model.config.decoder.numCodebooks;
  const padded = new Float32Array(Math.ceil(audio.length / hop) * hop);
  padded.set(audio);
  const frames = padded.length / hop;
  if (frames < 1) throw new RangeError('audio prompt is empty');
  if (frames > maxFrames) throw new RangeError(`audio prompt is ${frames} frames; at most ${maxFrames} fit the context window`);
  const codes = await model.encodeAudio(padded, 1);
  return Array.from({ length: frames }, (_, t) => Array.from({ length: K }, (_, k) => Number(codes[k * frames + t])));
}
