import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isValidTopicFilter, isValidTopicName, parseSharedFilter, topicMatches } from './topics.ts';

test('[MQTT-3.3.2-2] topic names carry no wildcards; [MQTT-4.7.3-1] and are not empty', { timeout: 5_000 }, () => {
  assert.equal(isValidTopicName('a/b'), true);
  assert.equal(isValidTopicName('a/+'), false);
  assert.equal(isValidTopicName('a/#'), false);
  assert.equal(isValidTopicName(''), false);
  assert.equal(isValidTopicName('a\u0000b'), false); // [MQTT-1.5.4-2]
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
});

test('[MQTT-4.7.1-2] matching, including # matching the parent level', { timeout: 5_000 }, () => {
  assert.equal(topicMatches('sport/#', 'sport'), true);
  assert.equal(topicMatches('sport/#', 'sport/tennis/player1'), true);
  assert.equal(topicMatches('sport/+', 'sport'), false);
  assert.equal(topicMatches('sport/+', 'sport/'), true);
  assert.equal(topicMatches('+/+', '/finance'), true);
  assert.equal(topicMatches('a/b', 'a/b/c'), false);
});

test('[MQTT-4.7.2-1] leading wildcards do not match $ topics', { timeout: 5_000 }, () => {
  assert.equal(topicMatches('#', '$SYS/x'), false);
  assert.equal(topicMatches('+/x', '$SYS/x'), false);
  assert.equal(topicMatches('$SYS/#', '$SYS/x'), true);
});
