import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NimbusError } from '../../shared/errors.js';
import type { Command } from '../command.js';
import { adminRequest, EXIT, errorFrom, findTarget, print, printJson, table } from '../context.js';

const USAGE = `Usage: nimbus bucket <ls|put|get|head|rm> ...

Object buckets (bound to functions as env.<NAME>, docs/state.md). Bodies stream:
files of any size go up and down without being held in memory.

  nimbus bucket ls                               every bucket, with object count and bytes
  nimbus bucket ls <bucket> [--prefix p] [--delimiter /]
  nimbus bucket put <bucket> <key> <file> [--content-type type]
  nimbus bucket get <bucket> <key> [file]        to the file, or stdout
  nimbus bucket head <bucket> <key>              size, etag, type, metadata
  nimbus bucket rm <bucket> <key>`;

interface ObjectView {
  key: string;
  size: number;
  etag: string;
  contentType: string | null;
  uploaded: string;
}

export const bucket: Command = {
  name: 'bucket',
  summary: 'put, get, list and delete objects in buckets',
  usage: USAGE,
  options: {
    prefix: { type: 'string' },
    delimiter: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
    'content-type': { type: 'string' },
  },
  async run(positionals, values) {
    const [action, b, key, file, ...rest] = positionals;
    const target = findTarget(values);
    const json = values.json === true;
    const usage = (why: string) => new NimbusError('NIMBUS_INVALID_ARGUMENT', `${why}\n${USAGE}`);
    if (rest.length > 0) throw usage('too many arguments');
    const objectPath = () => `/v1/buckets/${encodeURIComponent(b)}/objects/${encodeURIComponent(key)}`;
    switch (action) {
      case 'ls': {
        if (!b) {
          const out = (await (await adminRequest(target, 'GET', '/v1/buckets')).json()) as { buckets: { name: string; objects: number; bytes: number }[] };
          if (json) printJson(out);
          else if (out.buckets.length === 0) print('No buckets yet');
          else print(table([['BUCKET', 'OBJECTS', 'BYTES'], ...out.buckets.map((x) => [x.name, String(x.objects), String(x.bytes)])]));
          return EXIT.OK;
        }
        const q = new URLSearchParams();
        for (const k of ['prefix', 'delimiter', 'limit', 'cursor']) if (values[k] !== undefined) q.set(k, String(values[k]));
        const out = (await (await adminRequest(target, 'GET', `/v1/buckets/${encodeURIComponent(b)}/objects?${q}`)).json()) as {
          objects: ObjectView[];
          delimitedPrefixes: string[];
          cursor: string | null;
        };
        if (json) printJson(out);
        else {
          const rows = [
            ...out.delimitedPrefixes.map((p) => [p, '-', '', '']),
            ...out.objects.map((o) => [o.key, String(o.size), o.uploaded, o.contentType ?? '']),
          ];
          print(table([['KEY', 'SIZE', 'UPLOADED', 'TYPE'], ...rows]));
          if (out.cursor) print(`(more: --cursor ${out.cursor})`);
        }
        return EXIT.OK;
      }
      case 'put': {
        if (!b || key === undefined || file === undefined) throw usage('bucket put needs a bucket, a key and a file');
        const size = statSync(file).size;
        const body = Readable.toWeb(createReadStream(file)) as ReadableStream;
        const type = values['content-type'] !== undefined ? String(values['content-type']) : 'application/octet-stream';
        const res = await adminRequest(target, 'PUT', objectPath(), body, type, { 'content-length': String(size) });
        const out = (await res.json()) as { object: ObjectView };
        if (json) printJson(out);
        else print(`Stored ${key} in ${b} (${out.object.size} bytes, etag ${out.object.etag})`);
        return EXIT.OK;
      }
      case 'get': {
        if (!b || key === undefined) throw usage('bucket get needs a bucket and a key');
        const res = await adminRequest(target, 'GET', objectPath());
        const from = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
        await pipeline(from, file === undefined ? process.stdout : createWriteStream(file));
        return EXIT.OK;
      }
      case 'head': {
        if (!b || key === undefined || file !== undefined) throw usage('bucket head needs a bucket and a key');
        // A HEAD answer has no body to carry the error: a 404 is the object's absence.
        const res = await fetch(`${target.adminUrl}${objectPath()}`, { method: 'HEAD', headers: { authorization: `Bearer ${target.token}` } }).catch(
          (err: Error) => {
            throw new NimbusError('NIMBUS_PLATFORM_UNREACHABLE', `cannot reach the platform at ${target.adminUrl} (${err.message})`);
          },
        );
        if (res.status === 404) throw new NimbusError('NIMBUS_OBJECT_NOT_FOUND', `no object ${JSON.stringify(key)} in bucket "${b}"`);
        if (!res.ok) throw await errorFrom(res);
        const meta: Record<string, string> = {};
        res.headers.forEach((v, k) => {
          if (k.startsWith('x-nimbus-meta-')) meta[k.slice('x-nimbus-meta-'.length)] = decodeURIComponent(v);
        });
        const out = {
          key,
          size: Number(res.headers.get('content-length')),
          etag: (res.headers.get('etag') ?? '').replace(/"/g, ''),
          contentType: res.headers.get('content-type'),
          uploaded: new Date(res.headers.get('last-modified') ?? 0).toISOString(),
          customMetadata: meta,
        };
        if (json) printJson(out);
        else print(table(Object.entries(out).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])));
        return EXIT.OK;
      }
      case 'rm': {
        if (!b || key === undefined || file !== undefined) throw usage('bucket rm needs a bucket and a key');
        await adminRequest(target, 'DELETE', objectPath());
        if (!json) print(`Deleted ${key} from ${b}`);
        return EXIT.OK;
      }
      default:
        throw usage(`unknown bucket action ${JSON.stringify(action ?? '')}: use ls, put, get, head or rm`);
    }
  },
};
