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

// Copy a folder as actions/cache does, through a tar archive (GNU tar keeps whole-second file
// times, symlinks as links), so what a restore yields is what the real cache yields.
function copyTree(src, dest) {
  const { execFileSync } = require("child_process");
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  execFileSync("bash", ["-c", 'tar -C "$1" -cf - . | tar -C "$2" -xf -', "copy", src, dest]);
}

module.exports = { input, entry, log, copyTree, fs, path };
