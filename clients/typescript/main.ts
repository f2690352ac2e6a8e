/*
 * A TypeScript client of the service, the way an application would write one: types generated
 * from the OpenAPI document by openapi-typescript, calls made with openapi-fetch. Against a
 * running server it uploads and checks the digit, pages the history with the cursor, corrects a
 * label and reads it back, downloads the image, uploads a batch, deletes, and reads a problem
 * as its typed error. Every step is checked; the first failure ends it with exit status 1. With
 * MNIST_API_KEY set, every call sends it as a bearer token.
 *
 *   npx openapi-typescript http://127.0.0.1:8000/openapi.json --output schema.d.ts
 *   npx tsc && node dist/main.js http://127.0.0.1:8000 DATA_DIR
 *
 * Two things openapi-fetch needs to be told (see the README): a multipart body is sent by a
 * bodySerializer that returns FormData, and an image is read with parseAs: "blob".
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Prediction = components["schemas"]["Prediction"];
type Problem = components["schemas"]["Problem"];

function check(ok: boolean, message: string): asserts ok {
  if (!ok) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
}

const [server, dir] = process.argv.slice(2);
if (!server || !dir) {
  console.error("usage: node dist/main.js SERVER_URL DATA_DIR");
  process.exit(2);
}
// With MNIST_API_KEY set, every call carries the key (the spec's bearerAuth scheme).
const key = process.env.MNIST_API_KEY;
const client = createClient<paths>({
  baseUrl: server,
  headers: key ? { Authorization: `Bearer ${key}` } : {},
});

async function file(name: string, type: string): Promise<Blob> {
  return new Blob([await readFile(join(dir!, name))], { type });
}

// The generated types say `string` for a binary field; what is sent is a Blob in FormData.
function multipart(field: string, files: Array<[Blob, string]>): FormData {
  const form = new FormData();
  for (const [blob, name] of files) form.append(field, blob, name);
  return form;
}

async function upload(digit: number): Promise<Prediction> {
  const blob = await file(`digit-${digit}.png`, "image/png");
  const { data, error, response } = await client.POST("/v1/predictions", {
    body: { file: "" },
    bodySerializer: () => multipart("file", [[blob, `digit-${digit}.png`]]),
  });
  check(data !== undefined, `create_prediction: ${response.status} ${JSON.stringify(error)}`);
  check(response.status === 201, `create_prediction answered ${response.status}`);
  const location = response.headers.get("Location");
  check(location === `/v1/predictions/${data.id}`, `Location ${location} for ${data.id}`);
  check(data.digit === digit, `digit ${digit} read as ${data.digit}`);
  check(data.confidence === data.probabilities[digit], "confidence is not p[digit]");
  check(data.verdict === "digit", `verdict ${data.verdict} for a golden ${digit}`);
  return data;
}

const seven = await upload(7);
const three = await upload(3);
const five = await upload(5);
console.log("ok: uploads answered with their digits and Location");

const first = await client.GET("/v1/predictions", { params: { query: { limit: 1 } } });
check(first.data?.items[0]?.id === five.id, `first page: ${JSON.stringify(first.data)}`);
const cursor = first.data.next_cursor;
check(typeof cursor === "string", "no next_cursor on a page with more after it");
const second = await client.GET("/v1/predictions", { params: { query: { limit: 1, cursor } } });
check(second.data?.items[0]?.id === three.id, `second page: ${JSON.stringify(second.data)}`);
console.log("ok: history pages newest first with the cursor");

const path = { prediction_id: seven.id };
const labeled = await client.PUT("/v1/predictions/{prediction_id}/label", {
  params: { path },
  body: { label: 1 },
});
check(labeled.data?.label === 1, `label answer: ${JSON.stringify(labeled.data)}`);
const again = await client.GET("/v1/predictions/{prediction_id}", { params: { path } });
check(again.data?.label === 1 && typeof again.data.labeled_at === "string", "label read back");
console.log("ok: label set and read back");

const image = await client.GET("/v1/predictions/{prediction_id}/image", {
  params: { path },
  parseAs: "blob",
});
check(image.data instanceof Blob, `image: ${image.response.status}`);
const got = Buffer.from(await image.data.arrayBuffer());
const sent = await readFile(join(dir, "digit-7.png"));
check(got.equals(sent), `image: ${got.length} bytes back, ${sent.length} sent`);
console.log("ok: image bytes equal to the upload");

const files: Array<[Blob, string]> = [
  [await file("digit-2.png", "image/png"), "digit-2.png"],
  [await file("not-an-image.txt", "text/plain"), "not-an-image.txt"],
];
const batch = await client.POST("/v1/predictions/batch", {
  body: { files: [] },
  bodySerializer: () => multipart("files", files),
});
const [one, other] = batch.data?.items ?? [];
check(one?.status === 201 && one.prediction?.digit === 2, `item 1: ${JSON.stringify(one)}`);
check(
  other?.status === 422 && other.problem?.type === "/problems/invalid-image",
  `item 2: ${JSON.stringify(other)}`,
);
console.log("ok: batch with one result per file");

const deleted = await client.DELETE("/v1/predictions/{prediction_id}", {
  params: { path: { prediction_id: three.id } },
});
check(deleted.response.status === 204, `delete answered ${deleted.response.status}`);
const gone = await client.GET("/v1/predictions/{prediction_id}", {
  params: { path: { prediction_id: three.id } },
});
const problem: Problem | undefined = gone.error;
check(
  gone.response.status === 404 &&
    problem?.status === 404 &&
    problem.type === "/problems/prediction-not-found",
  `problem: ${JSON.stringify(problem)}`,
);
console.log(`ok: deleted; the 404 read as a typed Problem: ${problem.title}`);
