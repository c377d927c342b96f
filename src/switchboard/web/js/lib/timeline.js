// One conversation's messages, keyed and ordered by seq.
//
// The server numbers a conversation's messages 1, 2, 3... so the client
// can tell what it has: `last` is the highest seq up to which nothing is
// missing, which is what a resume asks for (`after_seq`). A message seen
// twice (a replay overlapping live delivery, a resent message) is kept
// once. A message past `last + 1` means a gap; the owner asks the server
// to replay it with `join`.

export class Timeline {
  constructor(conversation) {
    this.conversation = conversation;
    this.bySeq = new Map();
    this.last = 0;
    this.highest = 0;
    // True while a replay (start or join) is running: messages arrive in
    // order then, so a gap is only judged once the replay has ended.
    this.replaying = false;
  }

  // Add one message frame; returns false when it was already there.
  add(message) {
    if (this.bySeq.has(message.seq)) return false;
    this.bySeq.set(message.seq, message);
    this.highest = Math.max(this.highest, message.seq);
    while (this.bySeq.has(this.last + 1)) this.last += 1;
    return true;
  }

  get hasGap() {
    return this.highest > this.last;
  }

  get(seq) {
    return this.bySeq.get(seq);
  }

  byClientId(clientId, sender) {
    for (const message of this.bySeq.values()) {
      if (message.client_id === clientId && message.sender === sender) return message;
    }
    return undefined;
  }

  ordered() {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  // How many messages after `cursor` someone other than `user` sent.
  unreadFor(user, cursor) {
    let count = 0;
    for (const message of this.bySeq.values()) {
      if (message.seq > cursor && message.sender !== user) count += 1;
    }
    return count;
  }
}
