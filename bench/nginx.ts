// The `nginx` scenario's proxy: Debian's nginx-light with a config of our own in the bench's
// scratch dir, one process that does all the proxying (master_process off) so that its pid is
// the one pinned and accounted, keep-alive on both sides like the Node proxies.

import { mkdirSync, writeFileSync } from 'node:fs'
import { startCommand, type Child } from './children.ts'

export const NGINX = '/usr/sbin/nginx'
/** Debian's package, then the one that replaced it in later releases. */
export const NGINX_PACKAGES = ['nginx-light', 'nginx'] as const

/**
 * Writes `dir`/nginx.conf: `daemon off` and `master_process off` (no worker to find: the process
 * we start is the one proxying), no access log, HTTP/1.1 with a keep-alive pool to the upstream,
 * and no per-connection request limit on either side (nginx's default of 1 000 would make every
 * client and upstream connection reconnect, which no Node proxy here does).
 */
function writeConfig (dir: string, port: number, upstream: string): string {
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(`${dir}/temp/${sub}`, { recursive: true })
  const target = new URL(upstream)
  const file = `${dir}/nginx.conf`
  writeFileSync(file, `# Written by bench/nginx.ts.
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
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
}
`)
  return file
}

/** Starts nginx on `cpu` with its own config in `dir`; the Child's pid is the proxying process. */
export function startNginx (dir: string, cpu: number, port: number, upstream: string): Child {
  mkdirSync(dir, { recursive: true })
  const config = writeConfig(dir, port, upstream)
  // -e: the error log before the config is read (the compiled-in /var/log/nginx may not be writable).
  return startCommand('nginx', cpu, NGINX, ['-p', `${dir}/`, '-c', config, '-e', `${dir}/error.log`])
}
