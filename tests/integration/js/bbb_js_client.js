'use strict'
// Drives bigbluebutton-js 0.2.0 (axios underneath) against the service named by BBB_URL
// (".../bigbluebutton") and BBB_SECRET, as a new user of the library would, and prints one
// JSON object with what each call returned; tests/integration/test_bbb_client.py asserts it.
// Any failure (a rejected promise, e.g. "xmlData.replace is not a function" when the service
// answers JSON to axios' Accept header) is printed as {"error": ...} with exit status 1.

const axios = require('axios')
const bbb = require('bigbluebutton-js')

async function main() {
  const api = bbb.api(process.env.BBB_URL, process.env.BBB_SECRET)
  const http = bbb.http
  const out = {}

  out.create = await http(api.administration.create('JS room', 'js-room-1', {
    attendeePW: 'ap', moderatorPW: 'mp', record: false, 'meta_origin': 'bigbluebutton-js',
  }))
  out.join = await http(api.administration.join('Alice', 'js-room-1', 'mp',
    { redirect: false, userID: 'alice-1' }))

  // A browser join: the URL redirects to the conference page (not followed here).
  const joinUrl = api.administration.join('Bob', 'js-room-1', 'ap')
  const redirect = await axios(joinUrl, { maxRedirects: 0, validateStatus: () => true })
  out.joinRedirect = { status: redirect.status, location: redirect.headers.location }

  out.isMeetingRunning = await http(api.monitoring.isMeetingRunning('js-room-1'))
  out.getMeetingInfo = await http(api.monitoring.getMeetingInfo('js-room-1'))
  out.getMeetings = await http(api.monitoring.getMeetings())
  out.end = await http(api.administration.end('js-room-1', 'mp'))
  out.isMeetingRunningAfterEnd = await http(api.monitoring.isMeetingRunning('js-room-1'))
  out.getMeetingInfoAfterEnd = await http(api.monitoring.getMeetingInfo('js-room-1'))
  out.wrongSecret = await http(
    bbb.api(process.env.BBB_URL, 'not-the-secret').monitoring.getMeetings())
  return out
}

main().then(
  (out) => { process.stdout.write(JSON.stringify(out) + '\n') },
  (error) => {
    process.stdout.write(JSON.stringify({ error: String(error && error.stack || error) }) + '\n')
    process.exitCode = 1
  })
