// openapi_client_test: a client built from api/openapi.json calls a real vigil.
//
// openapi-client-axios turns every operation of the document into a method named by its
// operationId, with its path and query parameters and body as the document declares them. This
// script starts `vigil run` on a free loopback port with a fresh database, calls operations of
// every tag through that client, and fails on an answer the document does not lead to (a status
// other than the one expected, or a body without what the document says it has). The packages
// come from --modules (the build directory's install of tools/openapi-client-check).
//
//   node client_check.cjs --vigil build/vigil --openapi api/openapi.json --modules DIR
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { createRequire } = require("node:module");

function argument(name) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing --${name}`);
  return path.resolve(process.argv[at + 1]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Polls `condition` (async) every 100 ms until it returns a truthy value or `ms` pass.
async function eventually(condition, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await condition().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function main() {
  const vigilBinary = argument("vigil");
  const definition = JSON.parse(fs.readFileSync(argument("openapi"), "utf8"));
  const requireFromModules = createRequire(path.join(argument("modules"), "client_check.cjs"));
  const { OpenAPIClientAxios } = requireFromModules("openapi-client-axios");

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-openapi-client-"));
  const port = await freePort();
  const token = "openapi-client-check-0123456789abcdef";
  fs.writeFileSync(path.join(dir, "services.json"),
                   JSON.stringify([{ name: "self", url: `http://127.0.0.1:${port}/healthz`,
                                     interval_seconds: 1 }]));
  const log = fs.openSync(path.join(dir, "vigil.log"), "w");
  const vigil = spawn(vigilBinary, ["run"], {
    cwd: dir,
    stdio: ["ignore", log, log],
    env: { PATH: process.env.PATH, API_HOST: "127.0.0.1", API_PORT: String(port),
           DB_FILE: path.join(dir, "vigil.db"), SERVICES_FILE: path.join(dir, "services.json"),
           API_TOKEN: token, LOG_LEVEL: "warn" },
  });
  const exited = new Promise((resolve) => vigil.once("exit", (code, signal) => resolve({ code, signal })));
  try {
    const api = new OpenAPIClientAxios({
      definition,
      axiosConfigDefaults: {
        baseURL: `http://127.0.0.1:${port}`,
        headers: { Authorization: `Bearer ${token}` },
        validateStatus: () => true,
        timeout: 10000,
      },
    });
    const client = api.initSync();
    const operations = api.getOperations();
    expect(operations.length >= 30 && operations.every((op) => typeof client[op.operationId] === "function"),
           "the document's operations did not all become client methods");

    // Calls operationId with args and expects `status`; returns the JSON body's data.
    const call = async (operationId, status, ...args) => {
      const res = await client[operationId](...args);
      expect(res.status === status,
             `${operationId}: HTTP ${res.status}, expected ${status}: ${JSON.stringify(res.data)}`);
      return res.data && typeof res.data === "object" ? res.data.data : res.data;
    };

    await eventually(async () => (await client.getHealth()).status === 200, 20000, "/healthz 200");
    const self = await eventually(async () => {
      const page = await call("listServices", 200);
      const service = page.services.data.find((s) => s.name === "self");
      return service && service.last_tick_at !== null && service;
    }, 20000, "the first tick of the file's service");
    expect((await call("getService", 200, { id: self.id })).service.name === "self", "getService");

    const created = await call("createService", 201, null,
                               { name: "backup", kind: "heartbeat", interval_seconds: 3600, tags: ["batch"] });
    const backup = created.service;
    expect(typeof backup.push_token === "string" && backup.push_token.length > 0, "push_token");
    await call("pushHeartbeat", 200, { token: backup.push_token, msg: "from the generated client" });
    await eventually(async () => (await call("listServiceTicks", 200, { id: backup.id, limit: 5 })).ticks.data.length === 1,
                     10000, "the heartbeat's tick");
    expect((await call("updateService", 200, { id: backup.id }, { team: "ops" })).service.team === "ops",
           "updateService");
    await call("listServiceEvents", 200, { id: self.id, limit: 10 });
    const metrics = await call("getServiceMetrics", 200, { id: self.id, window: "1h" });
    expect(metrics.metrics.probe_count >= 1, "getServiceMetrics: probe_count");
    await call("getServiceSeries", 200, { id: self.id, window: "1h", step: 60 });
    expect((await call("listUptime", 200, { window: "24h" })).uptime.services.length === 2, "listUptime");

    await call("listAlerts", 200, { active: "true" });
    const window = (await call("createMaintenanceWindow", 201, null,
                               { tags: ["batch"], start: 1767225600, end: 1767229200 })).window;
    expect((await call("listMaintenanceWindows", 200)).windows.length === 1, "listMaintenanceWindows");
    await call("deleteMaintenanceWindow", 200, { id: window.id });

    const badge = await call("getStatusBadgeByName", 200, { name: "self" });
    expect(String(badge).startsWith("<svg"), "getStatusBadgeByName: not SVG");
    await call("getServiceUptimeBadge", 200, { id: self.id, window: "7d" });
    expect(String(await call("getStatusPage", 200)).includes("<html"), "getStatusPage: not HTML");
    expect(String(await call("getMetrics", 200)).includes("vigil_services"), "getMetrics");
    expect((await client.getOpenApiDocument()).data.openapi === definition.openapi, "getOpenApiDocument");

    await call("deleteService", 200, { id: backup.id, purge: "true" });
    expect((await client.getService({ id: backup.id })).status === 404, "getService after purge");
    console.log(`openapi client: ${operations.length} operations built, calls answered as documented`);
  } finally {
    vigil.kill("SIGTERM");
    const { code, signal } = await exited;
    if (code !== 0) {
      console.error(fs.readFileSync(path.join(dir, "vigil.log"), "utf8"));
      process.exitCode = 1;
      console.error(`vigil exited with ${code ?? signal}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`openapi client: ${error.stack || error}`);
  process.exitCode = 1;
});
