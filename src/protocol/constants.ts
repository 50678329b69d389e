// Fixed facts of protocol v1: where it is served and how its audio is cut into packets.

/** The WebSocket endpoint of protocol v1, whose version is in the path (a URL without a path gets it). */
export const PROTOCOL_PATH = '/v1/ws';

/** Sample rate of the audio and unit of `pts`: 48 kHz samples. */
export const SAMPLE_RATE = 48000;

/** Length of one Opus packet, in ms. */
export const PACKET_MS = 20;

/** Samples per channel of one packet (20 ms at 48 kHz); each packet adds this to `pts`. */
export const PACKET_SAMPLES = (SAMPLE_RATE * PACKET_MS) / 1000;

/** Packets per second of audio. */
export const PACKETS_PER_SECOND = 1000 / PACKET_MS;
