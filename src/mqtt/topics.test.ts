import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isValidTopicFilter, isValidTopicName, MAX_TOPIC_BYTES, parseSharedFilter, topicMatches, topicWithinLimits } from './topics.ts';

test('[MQTT-3.3.2-2] topic names carry no wildcards; [MQTT-4.7.3-1] and are not empty', { timeout: 5_000 }, () => {
  assert.equal(isValidTopicName('a/b'), true);
  assert.equal(isValidTopicName('a/+'), false);
  assert.equal(isValidTopicName('a/#'), false);
  assert.equal(isValidTopicName(''), false);
  assert.equal(isValidTopicName('a\u0000b'), false); // [MQTT-1.5.4-2]
  // One character, and wildcards or U+0000 in the first place too.
  assert.equal(isValidTopicName('a'), true);
  for (const bad of ['+', '#', '\u0000', '+/a', '#/a']) assert.equal(isValidTopicName(bad), false, JSON.stringify(bad));
});

test('[MQTT-4.7.1-1] [MQTT-4.7.1-2] wildcards occupy a whole level; # only last', { timeout: 5_000 }, () => {
  for (const ok of ['#', '+', 'a/+/b', 'a/#', '+/+', '/', 'a//b', '$SYS/#']) assert.equal(isValidTopicFilter(ok), true, ok);
  for (const bad of ['', 'a#', 'a/#/b', 'a+', 'a/b+', '#/a', 'a/\u0000']) assert.equal(isValidTopicFilter(bad), false, bad);
});

test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] shared subscription filters', { timeout: 5_000 }, () => {
  assert.deepEqual(parseSharedFilter('$share/g1/a/+'), { group: 'g1', filter: 'a/+' });
  assert.equal(parseSharedFilter('a/b'), null);
  assert.equal(parseSharedFilter('$share/g1'), 'invalid');
  assert.equal(parseSharedFilter('$share//a'), 'invalid');
  assert.equal(parseSharedFilter('$share/g+/a'), 'invalid');
  assert.equal(parseSharedFilter('$share/g/a/#/b'), 'invalid');
  assert.equal(parseSharedFilter('$share/g#/a'), 'invalid');
  assert.deepEqual(parseSharedFilter('$share/g/a/b'), { group: 'g', filter: 'a/b' }, 'a one-character ShareName');
  assert.equal(parseSharedFilter('a/$share/g/b'), null, 'only a leading $share/ makes a shared filter');
});

test('[MQTT-4.7.1-2] matching, including # matching the parent level', { timeout: 5_000 }, () => {
  assert.equal(topicMatches('sport/#', 'sport'), true);
  assert.equal(topicMatches('sport/#', 'sport/tennis/player1'), true);
  assert.equal(topicMatches('sport/+', 'sport'), false);
  assert.equal(topicMatches('sport/+', 'sport/'), true);
  assert.equal(topicMatches('+/+', '/finance'), true);
  assert.equal(topicMatches('a/b', 'a/b/c'), false);
  assert.equal(topicMatches('a/b', 'a/b'), true);
  assert.equal(topicMatches('a/b', 'a/c'), false);
  assert.equal(topicMatches('a/b', 'c/b'), false, 'the first level counts too');
  // '+' needs a level to be there, even before a '#'.
  assert.equal(topicMatches('sport/+/#', 'sport'), false);
  assert.equal(topicMatches('sport/+/#', 'sport/tennis'), true);
});

test('[MQTT-4.7.2-1] leading wildcards do not match $ topics', { timeout: 5_000 }, () => {
  assert.equal(topicMatches('#', '$SYS/x'), false);
  assert.equal(topicMatches('+/x', '$SYS/x'), false);
  assert.equal(topicMatches('$SYS/#', '$SYS/x'), true);
});

test('topicWithinLimits: levels and UTF-8 bytes, each limit itself allowed and one more refused', { timeout: 5_000 }, () => {
  assert.equal(MAX_TOPIC_BYTES, 2 ** 16 - 1, 'the longest UTF-8 string MQTT can carry [MQTT-1.5.4]');
  assert.equal(topicWithinLimits('a/b/c', 3, 100), true);
  assert.equal(topicWithinLimits('a/b/c/d', 3, 100), false);
  assert.equal(topicWithinLimits('a//b', 3, 100), true);
  assert.equal(topicWithinLimits('a//b', 2, 100), false, 'an empty level is a level');
  assert.equal(topicWithinLimits('/', 2, 100), true);
  assert.equal(topicWithinLimits('/', 1, 100), false);
  assert.equal(topicWithinLimits('x'.repeat(40), 1, 40), true, 'exactly maxBytes');
  assert.equal(topicWithinLimits('x'.repeat(41), 1, 40), false);
  assert.equal(topicWithinLimits('x'.repeat(40), 1, 100), true, 'ASCII: characters are bytes');
  // Three bytes per character: the byte count decides, not the character count.
  assert.equal(topicWithinLimits('\u20ac'.repeat(40), 1, 120), true);
  assert.equal(topicWithinLimits('\u20ac'.repeat(40), 1, 119), false);
  assert.equal(topicWithinLimits('\u00e9'.repeat(50), 1, 100), true);
  assert.equal(topicWithinLimits('\u00e9'.repeat(50), 1, 99), false);
});
