// Conformance values: JSON with markers for what JSON cannot hold
// (`$undefined`, `$nan`, `$inf`; `$map` in Node-only children).
'use strict';
function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$undefined') return undefined;
    if (keys.length === 1 && keys[0] === '$nan') return NaN;
    if (keys.length === 1 && keys[0] === '$inf') return Infinity;
    // Node-only: a Map (advanced serialization carries it; Hive does not).
    if (keys.length === 1 && keys[0] === '$map') return new Map(decode(v.$map));
    const out = {};
    for (const k of keys) out[k] = decode(v[k]);
    return out;
  }
  return v;
}
module.exports = { decode };
