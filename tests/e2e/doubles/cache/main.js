// Restore: copy <store>/<key> to `path` when present (through tar, as the real cache); report
// cache-hit. The `restore` sub-action runs it.
const { input, entry, log, copyTree, fs } = require("./common.js");

const src = entry();
const dest = input("path");
const hit = fs.existsSync(src);
if (hit) {
  copyTree(src, dest);
}
fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${hit}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, `hit=${hit}\n`);
log(`cache restore key=${input("key")} hit=${hit}`);
