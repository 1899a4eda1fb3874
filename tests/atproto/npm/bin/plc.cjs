// A DID PLC directory in memory, for foureyes' tests: `node plc.cjs` with PLC_PORT set.
// Started by tests/atproto/harness.py from the install directory (scripts/atproto-setup).
'use strict'
const { PlcServer, Database } = require('@did-plc/server')

async function main() {
  const port = Number(process.env.PLC_PORT)
  const server = PlcServer.create({ db: Database.mock(), port })
  await server.start()
  console.log(`plc listening on ${port}`)
  const stop = async () => {
    await server.destroy()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
