// Debian's nginx-light in the bench, with configs of our own in the bench's scratch dir, each one
// process (master_process off) so that its pid is the one pinned and accounted: the `nginx`
// scenario's proxy (keep-alive on both sides like the Node proxies), and the upstream every
// scenario of `npm run bench` hits (stable and canary, a fixed JSON body each).

import { mkdirSync, writeFileSync } from 'node:fs'
import { startCommand, type Child } from './children.ts'
import { upstreamBody } from './upstream-body.ts'

export const NGINX = '/usr/sbin/nginx'
/** Debian's package, then the one that replaced it in later releases. */
export const NGINX_PACKAGES = ['nginx-light', 'nginx'] as const

/**
 * `dir`/`name`.conf with `http` as its http block: `daemon off` and `master_process off` (no
 * worker to find: the process we start is the one serving), no access log, and no
 * per-connection request limit (nginx's default of 1 000 would make every client connection
 * reconnect, which no Node server here does).
 */
function writeConfig (dir: string, name: string, http: string): string {
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(`${dir}/temp/${sub}`, { recursive: true })
  const file = `${dir}/${name}.conf`
  writeFileSync(file, `# Written by bench/nginx.ts.
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/error.log warn;

events {
  worker_connections 4096;
}

http {
  access_log off;
  client_body_temp_path ${dir}/temp/client_body;
  proxy_temp_path ${dir}/temp/proxy;
  fastcgi_temp_path ${dir}/temp/fastcgi;
  uwsgi_temp_path ${dir}/temp/uwsgi;
  scgi_temp_path ${dir}/temp/scgi;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
${http}}
`)
  return file
}

function start (name: string, dir: string, cpu: number, config: string): Child {
  // -e: the error log before the config is read (the compiled-in /var/log/nginx may not be writable).
  return startCommand(name, cpu, NGINX, ['-p', `${dir}/`, '-c', config, '-e', `${dir}/error.log`])
}

/**
 * Starts the `nginx` scenario's proxy on `cpu`: HTTP/1.1 with an upstream keep-alive pool of 64
 * and no request limit on it either. The Child's pid is the proxying process.
 */
export function startNginx (dir: string, cpu: number, port: number, upstream: string): Child {
  mkdirSync(dir, { recursive: true })
  const target = new URL(upstream)
  return start('nginx', dir, cpu, writeConfig(dir, 'nginx', `
  upstream stable {
    server ${target.hostname}:${target.port};
    keepalive 64;
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://stable;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
`))
}

/**
 * Starts one nginx on `cpu` answering every request on each port with 200 and the same JSON body
 * of `bodyBytes` (`return 200`, Content-Length, keep-alive): the bench's upstreams. A request
 * body is read and discarded, so its connection stays reusable.
 */
export function startNginxUpstream (dir: string, cpu: number, ports: Record<string, number>, bodyBytes: number): Child {
  mkdirSync(dir, { recursive: true })
  const servers = Object.entries(ports).map(([version, port]) => `
  server {
    listen 127.0.0.1:${port};
    location / {
      default_type application/json;
      return 200 '${upstreamBody(version, bodyBytes)}';
    }
  }
`).join('')
  return start('nginx upstream', dir, cpu, writeConfig(dir, 'upstream', servers))
}
