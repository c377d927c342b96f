// Reconnect delays: exponential backoff with full jitter.
//
// The exponential bound is capped first and the jitter drawn under it, so
// after a server restart its clients spread evenly over [0, cap) instead
// of arriving together at the cap.

export const DEFAULT_BACKOFF = Object.freeze({ base: 500, cap: 30000 });

export function backoffDelay(attempt, options = {}) {
  const { base, cap } = { ...DEFAULT_BACKOFF, ...options };
  const random = options.random || Math.random;
  const bound = Math.min(cap, base * 2 ** Math.max(0, attempt));
  return random() * bound;
}
