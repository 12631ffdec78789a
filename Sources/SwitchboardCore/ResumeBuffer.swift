/// The events of one session that the client may not have seen yet, oldest first.
///
/// While the session is attached it holds what was sent since the last acknowledgement (a pong
/// to a server ping proves the client read everything written before that ping); while detached
/// it also takes the events addressed to the session. Empty buffers own no storage.
struct ResumeBuffer: Sendable {
    private var storage: [SessionEvent] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }
    var first: SessionEvent? { isEmpty ? nil : storage[head] }

    mutating func append(_ event: SessionEvent) {
        storage.append(event)
    }

    @discardableResult
    mutating func removeFirst() -> SessionEvent {
        let event = storage[head]
        head += 1
        compactIfNeeded()
        return event
    }

    /// Drops every event with `seq <= seq`.
    mutating func drop(through seq: UInt64) {
        while let first, first.seq <= seq {
            head += 1
        }
        compactIfNeeded()
    }

    /// The events with `seq > seq`, in order.
    func events(after seq: UInt64) -> [SessionEvent] {
        storage[head...].filter { $0.seq > seq }
    }

    private mutating func compactIfNeeded() {
        if head == storage.count {
            storage = []  // give the storage back: idle sessions own none
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }
}
