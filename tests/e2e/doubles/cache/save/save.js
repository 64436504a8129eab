// Save: copy `path` to <store>/<key> now (actions/cache/save saves when its step runs; an
// existing entry is never overwritten, as GitHub's cache refuses to overwrite a key).
const { input, entry, log, copyTree, fs } = require("../common.js");

const dest = entry();
const src = input("path");
if (!fs.existsSync(dest) && fs.existsSync(src)) {
  copyTree(src, dest);
  log(`cache save key=${input("key")} event=${process.env.GITHUB_EVENT_NAME}`);
}
