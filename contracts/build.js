// Compiles contracts/src with the pinned solc-js (package.json) and writes
// contracts/out/<Name>.json (ABI, creation and runtime bytecode, the
// compiler). `--check` compiles and compares with the committed artefacts
// instead, failing with what differs: CI runs it so the bytecode the
// Rust side deploys is the bytecode of these sources.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const check = process.argv.includes("--check");
const sourcesDir = path.join(here, "src");
const outDir = path.join(here, "out");

// Source names are relative to contracts/src, so the metadata (and the
// bytecode's metadata hash) does not depend on the checkout's directory.
const sources = {};
for (const file of fs.readdirSync(sourcesDir).sort()) {
  if (file.endsWith(".sol")) {
    sources[file] = { content: fs.readFileSync(path.join(sourcesDir, file), "utf8") };
  }
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // Cancun: what anvil and today's public EVM chains run.
    evmVersion: "cancun",
    // The IR pipeline: the set-change and slashing functions need more
    // stack slots than the legacy code generator allows.
    viaIR: true,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  process.stderr.write(e.formattedMessage + "\n");
}
if (errors.length > 0) {
  process.exit(1);
}

let differs = 0;
fs.mkdirSync(outDir, { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    // The shape foundry writes, which alloy's `sol!` reads.
    const artefact = {
      contractName: name,
      sourceName: file,
      compiler: `solc ${solc.version()}`,
      abi: c.abi,
      bytecode: { object: "0x" + c.evm.bytecode.object },
      deployedBytecode: { object: "0x" + c.evm.deployedBytecode.object },
    };
    const text = JSON.stringify(artefact, null, 2) + "\n";
    const target = path.join(outDir, `${name}.json`);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
      if (committed !== text) {
        process.stderr.write(
          `contracts/out/${name}.json differs from a fresh compile of contracts/src: run \`npm run build\` in contracts/ and commit the result\n`,
        );
        differs += 1;
      } else {
        process.stdout.write(`contracts/out/${name}.json matches a fresh compile (${solc.version()})\n`);
      }
    } else {
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote contracts/out/${name}.json (${c.evm.deployedBytecode.object.length / 2} bytes deployed)\n`);
    }
  }
}
process.exit(differs > 0 ? 1 : 0);
