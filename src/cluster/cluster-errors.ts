import { type ErrorRegistry, RiverrunError } from '../errors.ts';

export const CLUSTER_ERRORS = {
  CLUSTER_REDIS_UNREACHABLE: {
    meaning: 'A server started with --redis could not reach Redis (the message says where and why); it does not start without it.',
  },
  CLUSTER_BAD_URL: { meaning: 'The --redis URL is not a redis:// (or rediss://) URL.' },
} as const satisfies ErrorRegistry;

export type ClusterErrorCode = keyof typeof CLUSTER_ERRORS;

export class ClusterError extends RiverrunError<ClusterErrorCode> {}
