// Shared helpers of the actions/cache double: inputs, outputs and the local store.
const fs = require("fs");
const path = require("path");

function input(name) {
  return (process.env[`INPUT_${name.toUpperCase().replace(/ /g, "_")}`] || "").trim();
}

function entry() {
  const root = process.env.MLCI_E2E_CACHE_DIR;
  if (!root) throw new Error("MLCI_E2E_CACHE_DIR is not set");
  const key = input("key");
  if (!/^[A-Za-z0-9._+-]+$/.test(key)) throw new Error(`unexpected cache key: ${key}`);
  return path.join(root, key);
}

function log(line) {
  if (process.env.MLCI_E2E_LOG) fs.appendFileSync(process.env.MLCI_E2E_LOG, line + "\n");
}

module.exports = { input, entry, log, fs, path };
