// Restore: copy <store>/<key> to `path` when present, keeping file times as tar does; report
// cache-hit. Used by the cache double and by its `restore` sub-action.
const { input, entry, log, fs } = require("./common.js");

const src = entry();
const dest = input("path");
const hit = fs.existsSync(src);
if (hit) {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
}
fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${hit}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, `hit=${hit}\n`);
log(`cache restore key=${input("key")} hit=${hit}`);
