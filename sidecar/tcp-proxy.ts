// Envoy's tcp_proxy network filter: a downstream connection is joined to one
// connection to a host of the cluster (weft's inbound side of a tcp app).
// As Envoy's: no cluster closes it (downstream_cx_no_route), no healthy host
// (upstream_cx_none_healthy) or the circuit breaker's max_connections
// (upstream_cx_overflow) too; the upstream connection is counted as the
// cluster's pools count theirs (upstream_cx_*, its connect failure also fed
// to outlier detection); half-closes pass through (a client that shuts its
// write side still gets the answer); and after idle_timeout (1 h unless set,
// 0: never) with no byte either way both connections close.

import net from 'node:net';
import type { TcpProxyConfig } from './config.ts';
import type { ProxyEnv } from './proxy.ts';
import type { TcpSeries } from './stats.ts';
import { connectTls, countConnection } from './upstream.ts';

/** Envoy's tcp_proxy idle_timeout when the config sets none. */
export const TCP_IDLE_TIMEOUT_MS = 3_600_000;

export function tcpProxy(env: ProxyEnv, chain: TcpProxyConfig, socket: net.Socket): void {
  const ts = env.stats.tcp(chain.statPrefix);
  ts.cxTotal.value++;
  socket.on('error', () => undefined);
  const cluster = env.clusters.get(chain.cluster);
  if (!cluster) {
    ts.noRoute.value++;
    return void socket.destroy();
  }
  const host = cluster.pick({});
  if (!host) {
    env.stats.noHealthyUpstream.inc(env.stats.clusterLabel(chain.cluster));
    return void socket.destroy();
  }
  const o = cluster.connectOptions(host);
  if (o.canConnect && !o.canConnect()) {
    o.cxOverflow?.();
    return void socket.destroy();
  }
  cluster.hadTraffic = true;
  host.activeRequests++;
  const open = o.connectionsOpen;
  if (open) {
    open.value++;
    open.changed();
  }
  // Half-closes pass through: each side's end is the other's, and a connection closes once both directions ended.
  socket.allowHalfOpen = true;
  const upstream = o.tls ? connectTls(o, undefined) : net.connect({ host: o.address, port: o.port, noDelay: true, allowHalfOpen: true });
  const counted = countConnection(o, upstream, 'tcp', o.tls ? 'secureConnect' : 'connect', { socket: upstream, busy: () => true });
  let connected = false;
  const connectTimer = setTimeout(() => {
    counted.timedOut();
    upstream.destroy();
  }, o.connectTimeoutMs);
  upstream.once(o.tls ? 'secureConnect' : 'connect', () => {
    clearTimeout(connectTimer);
    connected = true;
    // Envoy's LocalOriginConnectSuccessFinal: a success to outlier detection (it ends a run of connect failures).
    cluster.recordResult(host, 200);
    socket.pipe(upstream);
    upstream.pipe(socket);
    watchIdle(chain.idleTimeoutMs ?? TCP_IDLE_TIMEOUT_MS, socket, upstream, ts);
  });
  upstream.on('error', () => {
    // A connect failure (or timeout) to outlier detection, as Envoy's LocalOriginConnectFailed.
    if (!connected) cluster.recordResult(host, 0);
  });
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(connectTimer);
    host.activeRequests--;
    if (open) {
      open.value--;
      open.changed();
    }
    socket.destroy();
    upstream.destroy();
  };
  upstream.once('close', finish);
  socket.once('close', finish);
}

/** Both connections close after `ms` with no byte either way (idle_timeout), counted. */
function watchIdle(ms: number, a: net.Socket, b: net.Socket, ts: TcpSeries): void {
  if (ms <= 0) return;
  const timer = setTimeout(() => {
    ts.idleTimeout.value++;
    a.destroy();
    b.destroy();
  }, ms);
  timer.unref();
  const refresh = () => void timer.refresh();
  a.on('data', refresh);
  b.on('data', refresh);
  a.once('close', () => clearTimeout(timer));
  b.once('close', () => clearTimeout(timer));
}
