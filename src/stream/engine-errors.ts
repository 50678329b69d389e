import { type ErrorRegistry, RiverrunError } from '../errors.ts';

/** Codes the engine raises itself; a request can also fail with the code of the error behind it (e.g. AUDIO_CORRUPT). */
export const ENGINE_ERRORS = {
  ENGINE_MODEL_LOAD_FAILED: { meaning: 'The engine worker could not load the model (the message says which file and why).' },
  ENGINE_STOPPED: {
    meaning: 'The engine has stopped (closed, or its worker kept dying or could not start again); every request fails from then on.',
  },
  ENGINE_RESTARTING: { meaning: 'The engine worker died before it answered a query; a new one is resuming the streams (ask again).' },
  ENGINE_UNKNOWN_STREAM: { meaning: 'A request named a stream the engine does not hold.' },
  ENGINE_PROMPT_ENCODING: {
    meaning: 'A text prompt could not be encoded; the control that carried it is dropped and the stream keeps its conditioning.',
  },
  ENGINE_INTERNAL: { meaning: 'The engine failed in a way it did not classify (details in the log).' },
} as const satisfies ErrorRegistry;

/** A failed engine request. Its code is an ENGINE_ERRORS code or that of the error behind it. */
export class EngineError extends RiverrunError<string> {}
