// Audio prompts decoded in a worker (src/stream/prompt-audio-decoder.ts): the same audio as decoding in
// place, the same errors, and no filter design on the calling thread.
import { afterAll, describe, expect, it } from 'vitest';
import { AudioFileError, decodeToMono } from '../src/stream/audio-file.ts';
import { PromptAudioDecoder } from '../src/stream/prompt-audio-decoder.ts';
import { filterTableCacheBytes } from '../src/stream/resampler.ts';
import { encodeWavFloat32 } from '../src/stream/wav.ts';

const decoder = new PromptAudioDecoder();
afterAll(() => decoder.close());

function tone(frames: number, rate: number): Float32Array {
  return Float32Array.from({ length: frames }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / rate));
}

describe('PromptAudioDecoder', () => {
  it('decodes odd-rate prompts off this thread, to the same samples as decodeToMono', async () => {
    const rates = [767_999, 767_997, 44_101];
    const wavs = rates.map((r) => encodeWavFloat32(tone(256, r), r, 1));
    const decoded = await Promise.all(wavs.map((w) => decoder.decode(w, 32000)));
    // The worker designed the filters: this thread's table cache is still empty.
    expect(filterTableCacheBytes()).toBe(0);
    for (const [i, w] of wavs.entries()) expect(decoded[i]).toEqual(await decodeToMono(w, 32000));
    expect(decoder.pending).toBe(0);
  });

  it('rejects with the AudioFileError that decoding in place throws', async () => {
    const bytes = new TextEncoder().encode('this is not audio at all');
    const inPlace = await decodeToMono(bytes, 32000).catch((e: unknown) => e);
    const viaWorker = await decoder.decode(bytes, 32000).catch((e: unknown) => e);
    expect(inPlace).toBeInstanceOf(AudioFileError);
    expect(viaWorker).toBeInstanceOf(AudioFileError);
    expect((viaWorker as AudioFileError).code).toBe((inPlace as AudioFileError).code);
    expect((viaWorker as AudioFileError).message).toBe((inPlace as AudioFileError).message);
  });
});
