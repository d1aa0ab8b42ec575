import t from 'tap'
import { clientIdOf, redactQuery, streamIdOf, streamKeyOf, streamUrl } from '../src/srs/hooks.js'

t.test('stream urls follow SRS: the default vhost is left out', async (t) => {
  t.equal(streamUrl('__defaultVhost__', 'live', 'cam1'), '/live/cam1')
  t.equal(streamUrl('example.com', 'live', 'cam1'), 'example.com/live/cam1')
})

t.test('the stream key is SRS stream_url when sent, else built the same way', async (t) => {
  t.equal(streamKeyOf({ vhost: '__defaultVhost__', app: 'live', stream: 'cam1', stream_url: '/live/cam1' }), '/live/cam1')
  t.equal(streamKeyOf({ vhost: '__defaultVhost__', app: 'live', stream: 'cam1' }), '/live/cam1')
  t.equal(streamKeyOf({ vhost: 'v', app: 'live', stream: 'cam1', stream_url: '' }), 'v/live/cam1')
})

t.test('client ids from old SRS (integers) become strings', async (t) => {
  t.equal(clientIdOf({ client_id: 1985 }), '1985')
  t.equal(clientIdOf({ client_id: 'og7nez71' }), 'og7nez71')
})

t.test('secret-looking query values and userinfo are masked for logs', async (t) => {
  t.equal(redactQuery('?key=abc&vhost=x'), '?key=***&vhost=x')
  t.equal(redactQuery('?token=1&sign=2&expires=3&secret=4&password=5'), '?token=***&sign=***&expires=3&secret=***&password=***')
  t.equal(redactQuery('rtmp://u:pw@host:1935/live?auth_key=z'), 'rtmp://***@host:1935/live?auth_key=***')
  t.equal(redactQuery('rtmp://host/live'), 'rtmp://host/live', 'a url without a query is kept')
  t.equal(redactQuery('key=raw&upstream=rtc'), 'key=***&upstream=rtc', 'a bare WHIP query is masked too')
  t.equal(redactQuery('?flag'), '?flag')
  t.equal(redactQuery(''), '')
  t.equal(redactQuery(undefined), undefined)
  // The same answers whether or not a value holds anything to mask (the usual one holds nothing).
  t.equal(redactQuery('rtmp://u:pw@host/live'), 'rtmp://***@host/live', 'userinfo without a query')
  t.equal(redactQuery('rtmp://host/live_token'), 'rtmp://host/live_token', 'a secret-looking word outside a query')
  t.equal(redactQuery('?flag&key=1'), '?flag&key=***')
  t.equal(redactQuery('?vhost=tokens.example&app=live'), '?vhost=tokens.example&app=live', 'only names are looked at')
  t.equal(redactQuery('?vhost=v1&app=live&x=a@b'), '?vhost=v1&app=live&x=a@b', 'an @ outside userinfo')
})

t.test('an empty stream_id counts as none', async (t) => {
  t.equal(streamIdOf({ stream_id: '' }), undefined)
  t.equal(streamIdOf({}), undefined)
  t.equal(streamIdOf({ stream_id: 'vid-1' }), 'vid-1')
})
