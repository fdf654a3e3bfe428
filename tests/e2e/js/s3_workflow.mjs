// The AWS SDK for JavaScript v3 against an S3 endpoint, driven by tests/e2e/test_clients_js.py.
//
// Usage: node s3_workflow.mjs WORKDIR RESULTS_JSON
//   env E2E_S3_ENDPOINT, E2E_S3_ACCESS_KEY, E2E_S3_SECRET_KEY, E2E_S3_BUCKET (not yet created),
//   E2E_S3_LIST_KEYS (a JSON array of keys under "list/" for the listing steps);
//   NODE_EXTRA_CA_CERTS for a self-signed https endpoint.
//   WORKDIR holds the inputs stream.bin, buffer.bin and big.bin (made by the Python test);
//   downloads go to WORKDIR/out/.
//
// Every step runs even when an earlier one failed, and its outcome goes to RESULTS_JSON as
// {steps: {name: {ok, data, error, wire}}}: `data` is what the step observed (sizes, ETags,
// SHA-256 of bodies, listing pages), `error` the SDK exception (name, HTTP status, message),
// `wire` every HTTP exchange of the step (method, path, query, request headers without the
// signature, status, response headers), so that the Python side checks the results and can
// show the exact request and response of a failing step. Exit status 0 whenever the results
// were written; the Python side judges them.

import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { NodeHttpHandler } from "@smithy/node-http-handler";

const MiB = 1024 * 1024;
const [workdir, resultsPath] = process.argv.slice(2);
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const endpoint = env("E2E_S3_ENDPOINT");
const accessKeyId = env("E2E_S3_ACCESS_KEY");
const secretAccessKey = env("E2E_S3_SECRET_KEY");
const Bucket = env("E2E_S3_BUCKET");

// -- wire recording: a request handler that logs every exchange ---------------------------
class RecordingHandler {
  constructor(inner) {
    this.inner = inner;
    this.log = [];
  }
  get metadata() {
    return this.inner.metadata;
  }
  async handle(request, options) {
    const headers = { ...request.headers };
    if (headers.authorization) headers.authorization = headers.authorization.replace(/Signature=\w+/, "Signature=...");
    const entry = { method: request.method, path: request.path, query: { ...request.query }, headers };
    this.log.push(entry);
    try {
      const out = await this.inner.handle(request, options);
      entry.status = out.response.statusCode;
      entry.response_headers = { ...out.response.headers };
      return out;
    } catch (e) {
      entry.transport_error = String(e);
      throw e;
    }
  }
  updateHttpClientConfig(key, value) {
    this.inner.updateHttpClientConfig(key, value);
  }
  httpHandlerConfigs() {
    return this.inner.httpHandlerConfigs();
  }
  destroy() {
    this.inner.destroy();
  }
}

function makeClient(creds, handler) {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: creds,
    maxAttempts: 3,
    requestHandler: handler,
    // the defaults, spelled out: CRC32 on every upload that supports it, validated downloads
    requestChecksumCalculation: "WHEN_SUPPORTED",
    responseChecksumValidation: "WHEN_SUPPORTED",
  });
}

const recorder = new RecordingHandler(
  new NodeHttpHandler({ connectionTimeout: 10_000, requestTimeout: 120_000 }),
);
const s3 = makeClient({ accessKeyId, secretAccessKey }, recorder);

// -- steps ---------------------------------------------------------------------------------
const steps = {};

function describeError(e) {
  return {
    name: e?.name ?? null,
    code: e?.Code ?? e?.code ?? null,
    status: e?.$metadata?.httpStatusCode ?? null,
    message: String(e?.message ?? e),
    request_id: e?.$metadata?.requestId ?? null,
  };
}

async function step(name, fn, rec = recorder) {
  const start = rec.log.length;
  const result = { ok: false, data: null, error: null, wire: null };
  try {
    result.data = (await fn()) ?? {};
    result.ok = true;
  } catch (e) {
    result.error = describeError(e);
  }
  result.wire = rec.log.slice(start);
  steps[name] = result;
}

async function expectError(fn) {
  try {
    await fn();
  } catch (e) {
    return describeError(e);
  }
  throw new Error("the call succeeded where an error was expected");
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");

async function bodySha256(body) {
  const hash = createHash("sha256");
  let length = 0;
  for await (const chunk of body) {
    hash.update(chunk);
    length += chunk.length;
  }
  return { sha256: hash.digest("hex"), length };
}

const meta = (out) => ({
  status: out.$metadata.httpStatusCode,
  attempts: out.$metadata.attempts,
});

const streamPath = join(workdir, "stream.bin");
const bufferData = readFileSync(join(workdir, "buffer.bin"));
const bigPath = join(workdir, "big.bin");
mkdirSync(join(workdir, "out"), { recursive: true });

const LIST_KEYS = JSON.parse(env("E2E_S3_LIST_KEYS")); // keys for the listing and DeleteObjects steps

await step("create_bucket", async () => {
  const out = await s3.send(new CreateBucketCommand({ Bucket }));
  const again = await expectError(() => s3.send(new CreateBucketCommand({ Bucket })));
  return { ...meta(out), location: out.Location ?? null, again };
});

await step("put_file_stream", async () => {
  const out = await s3.send(
    new PutObjectCommand({ Bucket, Key: "stream/file.bin", Body: createReadStream(streamPath) }),
  );
  return { ...meta(out), etag: out.ETag, crc32: out.ChecksumCRC32 ?? null };
});

await step("put_readable", async () => {
  // a plain Readable (no path to stat): the length has to be given
  const source = readFileSync(streamPath);
  async function* chunks() {
    for (let i = 0; i < source.length; i += 100_000) yield source.subarray(i, i + 100_000);
  }
  const out = await s3.send(
    new PutObjectCommand({
      Bucket,
      Key: "stream/readable.bin",
      Body: Readable.from(chunks()),
      ContentLength: source.length,
    }),
  );
  return { ...meta(out), etag: out.ETag, crc32: out.ChecksumCRC32 ?? null };
});

await step("put_buffer", async () => {
  const out = await s3.send(
    new PutObjectCommand({
      Bucket,
      Key: "buffer.bin",
      Body: bufferData,
      ContentType: "application/x-js-test",
      Metadata: { origin: "js-sdk-v3", note: "two words" },
    }),
  );
  const empty = await s3.send(new PutObjectCommand({ Bucket, Key: "empty.bin", Body: Buffer.alloc(0) }));
  return { ...meta(out), etag: out.ETag, crc32: out.ChecksumCRC32 ?? null, empty_etag: empty.ETag };
});

await step("head_object", async () => {
  const out = await s3.send(new HeadObjectCommand({ Bucket, Key: "buffer.bin" }));
  return {
    ...meta(out),
    length: out.ContentLength,
    etag: out.ETag,
    content_type: out.ContentType,
    metadata: out.Metadata,
    last_modified: out.LastModified?.toISOString() ?? null,
  };
});

async function getWhole(Key) {
  const out = await s3.send(new GetObjectCommand({ Bucket, Key, ChecksumMode: "ENABLED" }));
  const body = await bodySha256(out.Body); // a wrong checksum throws here, at the end
  return { ...meta(out), ...body, etag: out.ETag, crc32: out.ChecksumCRC32 ?? null, length_header: out.ContentLength };
}

await step("get_checksum", async () => ({
  file: await getWhole("stream/file.bin"),
  readable: await getWhole("stream/readable.bin"),
  buffer: await getWhole("buffer.bin"),
  empty: await getWhole("empty.bin"),
}));

await step("get_range", async () => {
  const out = await s3.send(new GetObjectCommand({ Bucket, Key: "stream/file.bin", Range: "bytes=1000-70999" }));
  const body = await bodySha256(out.Body);
  const tail = await s3.send(new GetObjectCommand({ Bucket, Key: "stream/file.bin", Range: "bytes=-100" }));
  const tailBody = await bodySha256(tail.Body);
  return {
    ...meta(out),
    ...body,
    content_range: out.ContentRange,
    tail: { ...meta(tail), ...tailBody, content_range: tail.ContentRange },
  };
});

await step("list", async () => {
  for (const Key of LIST_KEYS) {
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from(`listed ${Key}\n`) }));
  }
  // delimiter view, 2 entries a page, paginated by hand
  const pages = [];
  let ContinuationToken;
  for (let i = 0; i < 20; i++) {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket, Prefix: "list/", Delimiter: "/", MaxKeys: 2, ContinuationToken }),
    );
    pages.push({
      keys: (out.Contents ?? []).map((o) => o.Key),
      prefixes: (out.CommonPrefixes ?? []).map((p) => p.Prefix),
      truncated: out.IsTruncated ?? false,
      key_count: out.KeyCount ?? null,
    });
    if (!out.IsTruncated) break;
    ContinuationToken = out.NextContinuationToken;
  }
  // recursive view through the SDK's paginator, 3 keys a page
  const recursive = [];
  let recursivePages = 0;
  for await (const page of paginateListObjectsV2({ client: s3, pageSize: 3 }, { Bucket, Prefix: "list/" })) {
    recursivePages += 1;
    for (const o of page.Contents ?? []) recursive.push({ key: o.Key, size: o.Size, etag: o.ETag });
  }
  return { pages, recursive, recursive_pages: recursivePages };
});

await step("multipart_upload", async () => {
  const upload = new Upload({
    client: s3,
    params: { Bucket, Key: "big/multipart.bin", Body: createReadStream(bigPath) },
    partSize: 5 * MiB,
    queueSize: 4,
    leavePartsOnError: false,
  });
  const out = await upload.done();
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "big/multipart.bin" }));
  // download through the validating GetObject into a file the Python side hashes
  const get = await s3.send(new GetObjectCommand({ Bucket, Key: "big/multipart.bin", ChecksumMode: "ENABLED" }));
  await pipeline(get.Body, createWriteStream(join(workdir, "out", "multipart.bin")));
  return {
    etag: out.ETag,
    head_etag: head.ETag,
    head_length: head.ContentLength,
    get_etag: get.ETag,
    get_crc32: get.ChecksumCRC32 ?? null,
  };
});

await step("copy_object", async () => {
  const out = await s3.send(
    new CopyObjectCommand({ Bucket, Key: "copy/of buffer+1.bin", CopySource: `${Bucket}/buffer.bin` }),
  );
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "copy/of buffer+1.bin" }));
  const got = await getWhole("copy/of buffer+1.bin");
  // the copy source is URL-encoded by the caller (' ' and '+' here); new metadata replaces the old
  const replaced = await s3.send(
    new CopyObjectCommand({
      Bucket,
      Key: "copy/replaced.bin",
      CopySource: `${Bucket}/${encodeURIComponent("copy/of buffer+1.bin")}`,
      MetadataDirective: "REPLACE",
      ContentType: "text/x-replaced",
      Metadata: { origin: "replaced" },
    }),
  );
  const replacedHead = await s3.send(new HeadObjectCommand({ Bucket, Key: "copy/replaced.bin" }));
  return {
    replaced: {
      etag: replaced.CopyObjectResult?.ETag ?? null,
      head_etag: replacedHead.ETag,
      content_type: replacedHead.ContentType,
      metadata: replacedHead.Metadata,
    },
    ...meta(out),
    etag: out.CopyObjectResult?.ETag ?? null,
    last_modified: out.CopyObjectResult?.LastModified?.toISOString() ?? null,
    head_etag: head.ETag,
    head_length: head.ContentLength,
    head_metadata: head.Metadata,
    get: got,
  };
});

await step("delete_objects", async () => {
  const keys = [...LIST_KEYS, "list/never-existed.txt"];
  const out = await s3.send(
    new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }),
  );
  const after = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: "list/" }));
  return {
    ...meta(out),
    deleted: (out.Deleted ?? []).map((d) => d.Key).sort(),
    errors: (out.Errors ?? []).map((e) => ({ key: e.Key, code: e.Code })),
    left: (after.Contents ?? []).map((o) => o.Key),
  };
});

await step("presigned_get", async () => {
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: "buffer.bin" }), { expiresIn: 300 });
  const response = await fetch(url);
  const body = Buffer.from(await response.arrayBuffer());
  const missingUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: "no/such/key" }), {
    expiresIn: 300,
  });
  const missing = await fetch(missingUrl);
  const missingText = await missing.text();
  return {
    url_query: [...new URL(url).searchParams.keys()].sort(),
    status: response.status,
    length: body.length,
    sha256: sha256(body),
    etag: response.headers.get("etag"),
    missing_status: missing.status,
    missing_code: /<Code>([^<]*)<\/Code>/.exec(missingText)?.[1] ?? null,
  };
});

await step("presigned_put", async () => {
  const body = Buffer.from("uploaded through a presigned PUT URL\n".repeat(1000));
  const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket, Key: "presigned/put.txt" }), { expiresIn: 300 });
  const response = await fetch(url, { method: "PUT", body });
  return {
    url_query: [...new URL(url).searchParams.keys()].sort(),
    status: response.status,
    etag: response.headers.get("etag"),
    response_text: (await response.text()).slice(0, 500),
    sha256: sha256(body),
    length: body.length,
    get: await getWhole("presigned/put.txt"),
  };
});

await step("conditional_get", async () => {
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "buffer.bin" }));
  const matched = await s3.send(
    new GetObjectCommand({ Bucket, Key: "buffer.bin", IfMatch: head.ETag, Range: "bytes=0-9", ChecksumMode: "ENABLED" }),
  );
  const matchedBody = await bodySha256(matched.Body);
  return {
    if_match_range: { ...meta(matched), ...matchedBody, crc32: matched.ChecksumCRC32 ?? null },
    if_none_match: await expectError(() =>
      s3.send(new GetObjectCommand({ Bucket, Key: "buffer.bin", IfNoneMatch: head.ETag })),
    ),
    if_match_wrong: await expectError(() =>
      s3.send(new GetObjectCommand({ Bucket, Key: "buffer.bin", IfMatch: '"0123456789abcdef0123456789abcdef"' })),
    ),
  };
});

await step("errors", async () => ({
  get_missing: await expectError(() => s3.send(new GetObjectCommand({ Bucket, Key: "no/such/key" }))),
  head_missing: await expectError(() => s3.send(new HeadObjectCommand({ Bucket, Key: "no/such/key" }))),
  get_missing_bucket: await expectError(() =>
    s3.send(new GetObjectCommand({ Bucket: `${Bucket}-missing`, Key: "k" })),
  ),
}));

const badRecorder = new RecordingHandler(new NodeHttpHandler({ connectionTimeout: 10_000, requestTimeout: 60_000 }));
await step(
  "bad_credentials",
  async () => {
    const badSecret = makeClient({ accessKeyId, secretAccessKey: `${secretAccessKey}x` }, badRecorder);
    const badKey = makeClient({ accessKeyId: "AKIANOSUCHKEY0000000", secretAccessKey }, badRecorder);
    return {
      bad_secret_get: await expectError(() => badSecret.send(new GetObjectCommand({ Bucket, Key: "buffer.bin" }))),
      bad_secret_put: await expectError(() =>
        badSecret.send(new PutObjectCommand({ Bucket, Key: "forged.bin", Body: Buffer.from("forged") })),
      ),
      bad_key_list: await expectError(() => badKey.send(new ListObjectsV2Command({ Bucket }))),
    };
  },
  badRecorder,
);

writeFileSync(resultsPath, JSON.stringify({ node: process.version, steps }, null, 1));
s3.destroy();
