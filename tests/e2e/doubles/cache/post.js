// Save: copy `path` to <store>/<key> after a miss, like actions/cache's post step.
const { input, entry, log, fs } = require("./common.js");

const dest = entry();
const src = input("path");
if (process.env.STATE_hit !== "true" && fs.existsSync(src)) {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
  log(`cache save key=${input("key")}`);
}
