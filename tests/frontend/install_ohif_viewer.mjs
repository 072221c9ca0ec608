// Install the built OHIF viewer (npm package @ohif/app: its dist/ folder) for the viewer tests,
// pinned by version and tarball integrity in package.json ("ohifViewer").
//
//   node install_ohif_viewer.mjs        (run by scripts/setup; does nothing when installed)
//
// Why not a devDependency: npm would install the app's ~40 build-time dependencies (webpack
// loaders, React, every OHIF extension's sources), and some of them are not on every registry
// mirror, while the tests need only the built viewer. So: `npm pack` the one tarball (through
// the ordinary npm client and registry), check its sha512 against the pin as a lockfile would,
// and unpack dist/ into ohif-viewer/<version>/ (git-ignored). Prints the folder.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pin = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).ohifViewer;
const target = join(here, "ohif-viewer", pin.version);
const stamp = join(target, ".integrity");

if (existsSync(stamp) && readFileSync(stamp, "utf8") === pin.integrity) {
  process.stdout.write(`${target}\n`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "ohif-viewer-"));
try {
  const packed = JSON.parse(
    execFileSync("npm", ["pack", `${pin.package}@${pin.version}`, "--json", "--pack-destination", work], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  )[0];
  const tarball = join(work, packed.filename);
  const integrity = `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`;
  if (integrity !== pin.integrity) {
    throw new Error(`${pin.package}@${pin.version}: tarball integrity ${integrity}, pinned ${pin.integrity}`);
  }
  execFileSync("tar", ["-xzf", tarball, "-C", work, "package/dist"], { stdio: "inherit" });
  rmSync(target, { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  renameSync(join(work, "package", "dist"), target);
  writeFileSync(stamp, pin.integrity);
  process.stdout.write(`${target}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
