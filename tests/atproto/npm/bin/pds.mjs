// A Bluesky PDS for foureyes' tests, configured from PDS_* variables (tests/atproto/harness.py
// sets them); `node pds.mjs`. Started from the install directory (scripts/atproto-setup).
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds'

const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
await pds.start()
console.log(`pds listening on ${env.port}`)
const stop = async () => {
  await pds.destroy()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
