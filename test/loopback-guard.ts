/**
 * Preloaded into the processes the queue tests start (node --require): every outgoing TCP
 * connection and every DNS lookup is checked, and one to anywhere but this machine's loopback is
 * refused and written to the file LTF_NET_LOG names, which the test reads. Connections to Redis
 * on 127.0.0.1 pass; anything else (a telemetry call, a stray lookup) would show up there.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

// The module object itself (an import would give a copy whose properties are getters).
const dns = require('node:dns') as typeof import('node:dns');

const LOG = process.env.LTF_NET_LOG;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+|localhost)$/;

function record(what: string): void {
  if (LOG) fs.appendFileSync(LOG, `${process.pid} ${what}\n`);
}

const connect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]): net.Socket {
  const first = args[0];
  const options = (Array.isArray(first) ? first[0] : first) as { host?: string; path?: string; port?: number } | number | string;
  let host: string | undefined;
  if (typeof options === 'object' && options !== null) host = options.path ? undefined : (options.host ?? 'localhost');
  else if (typeof options === 'number' || /^\d+$/.test(String(options))) host = typeof args[1] === 'string' ? args[1] : 'localhost';
  if (host !== undefined && !LOOPBACK.test(host)) {
    record(`connect ${host}`);
    process.nextTick(() => this.destroy(new Error(`loopback-guard: a connection to ${host} was refused`)));
    return this;
  }
  return connect.apply(this, args);
} as typeof net.Socket.prototype.connect;

const lookup = dns.lookup as (...args: unknown[]) => void;
dns.lookup = function (hostname: string, ...rest: unknown[]) {
  if (!LOOPBACK.test(hostname)) record(`lookup ${hostname}`);
  return lookup.call(dns, hostname, ...rest);
} as typeof dns.lookup;
