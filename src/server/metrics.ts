// Prometheus metrics (prom-client): the process defaults plus what an operator of a real-time audio
// service watches: throughput, batch size, step latency, real-time factor, lead, underruns, streams,
// listeners, idle channels, bytes sent, errors by code.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AdmissionStats } from './admission.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly steps = new Counter({
    name: 'riverrun_steps_total',
    help: 'Decoder steps run (each advances every stream in its batch)',
    registers: [this.registry],
  });
  readonly batchRows = new Histogram({
    name: 'riverrun_batch_rows',
    help: 'Decoder rows per step',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });
  readonly batchStreams = new Histogram({
    name: 'riverrun_batch_streams',
    help: 'Streams advanced per step',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly stepSeconds = new Histogram({
    name: 'riverrun_step_seconds',
    help: 'Wall time of one engine step (decoder, codec, sampling, packets)',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    registers: [this.registry],
  });
  readonly decoderSeconds = new Counter({
    name: 'riverrun_decoder_seconds_total',
    help: 'Time spent in decoder runs',
    registers: [this.registry],
  });
  readonly codecSeconds = new Counter({
    name: 'riverrun_codec_seconds_total',
    help: 'Time spent in codec decoder runs',
    registers: [this.registry],
  });
  readonly realtimeFactor = new Gauge({
    name: 'riverrun_realtime_factor',
    help: 'Audio generated per wall time, per stream (1 = just real time)',
    labelNames: ['stream'],
    registers: [this.registry],
  });
  readonly leadSeconds = new Gauge({
    name: 'riverrun_lead_seconds',
    help: 'Audio generated ahead of the listener, per stream',
    labelNames: ['stream'],
    registers: [this.registry],
  });
  readonly underruns = new Gauge({
    name: 'riverrun_underruns',
    help: 'Times a stream ran dry (cumulative per stream)',
    labelNames: ['stream'],
    registers: [this.registry],
  });
  readonly streams = new Gauge({
    name: 'riverrun_streams',
    help: 'Streams in the engine',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly listeners = new Gauge({
    name: 'riverrun_listeners',
    help: 'Connected listeners',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'riverrun_bytes_sent_total',
    help: 'Audio and protocol bytes sent',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  readonly packetsSkipped = new Counter({
    name: 'riverrun_packets_skipped_total',
    help: 'Audio packets skipped for slow consumers',
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'riverrun_errors_total',
    help: 'Protocol errors sent to clients, by code',
    labelNames: ['code'],
    registers: [this.registry],
  });

  private channelStates: (() => { id: string; idle: boolean }[]) | null = null;
  readonly channelIdle = new Gauge({
    name: 'riverrun_channel_idle',
    help: 'Channels paused for want of listeners (whenIdle: pause): 1 while paused, per channel',
    labelNames: ['channel'],
    registers: [this.registry],
    collect: () => {
      for (const c of this.channelStates?.() ?? []) this.channelIdle.set({ channel: c.id }, c.idle ? 1 : 0);
    },
  });

  private admissionStats: (() => AdmissionStats) | null = null;
  readonly connections = new Gauge({
    name: 'riverrun_connections',
    help: 'WebSocket connections, by state (pending: no setup yet)',
    labelNames: ['state'],
    registers: [this.registry],
    collect: () => {
      const s = this.admissionStats?.();
      if (!s) return;
      this.connections.set({ state: 'pending' }, s.pending);
      this.connections.set({ state: 'set_up' }, s.connections - s.pending);
    },
  });
  readonly authBackoff = new Gauge({
    name: 'riverrun_auth_backoff_addresses',
    help: 'Client addresses refused setup with a token now, after repeated wrong tokens',
    registers: [this.registry],
    collect: () => {
      const s = this.admissionStats?.();
      if (s) this.authBackoff.set(s.authBlocked);
    },
  });
  readonly refused = new Counter({
    name: 'riverrun_admission_refused_total',
    help: 'Connections or setups refused by a cap: connections, pending (no setup yet), sessions, auth (backoff)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  readonly engineRestarts = new Counter({
    name: 'riverrun_engine_restarts_total',
    help: 'Engine worker deaths after which a new worker took over every stream',
    registers: [this.registry],
  });
  readonly engineRestartSeconds = new Histogram({
    name: 'riverrun_engine_restart_seconds',
    help: "From an engine worker's death to every stream created again in a new one",
    buckets: [0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly engineUp = new Gauge({
    name: 'riverrun_engine_up',
    help: '1 while the engine worker runs; 0 while a new one starts, or for good once the engine gave up',
    registers: [this.registry],
  });

  private clusterStore: (() => boolean) | null = null;
  readonly clusterStoreUp = new Gauge({
    name: 'riverrun_cluster_store_up',
    help: "A cluster worker: 1 while Redis answers (sessions' state kept current, failover available), else 0",
    registers: [this.registry],
    collect: () => {
      if (this.clusterStore) this.clusterStoreUp.set(this.clusterStore() ? 1 : 0);
    },
  });
  readonly sessionsResumed = new Counter({
    name: 'riverrun_sessions_resumed_total',
    help: 'Sessions taken up by this worker from the cluster store (their server was gone)',
    registers: [this.registry],
  });

  /** Where the channel gauge reads its values, at each scrape. */
  trackChannels(states: () => { id: string; idle: boolean }[]): void {
    this.channelStates = states;
  }

  /** Where the cluster store gauge reads its value, at each scrape (cluster workers only). */
  trackClusterStore(up: () => boolean): void {
    this.clusterStore = up;
  }

  /** Where the connection gauges read their values, at each scrape. */
  trackAdmission(stats: () => AdmissionStats): void {
    this.admissionStats = stats;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
