import NIOCore

/// The live client connections of one server, one list per event loop: a broadcast (drain) goes
/// loop by loop, each list touched only on its own loop, so no lock spans every connection.
final class ConnectionRegistry: Sendable {
    private let lists: [ObjectIdentifier: LoopList]

    init(group: any EventLoopGroup) {
        var lists: [ObjectIdentifier: LoopList] = [:]
        for loop in group.makeIterator() {
            lists[ObjectIdentifier(loop)] = LoopList(eventLoop: loop)
        }
        self.lists = lists
    }

    /// On the handler's loop.
    func add(_ handler: ClientConnectionHandler, id: UInt64, on loop: any EventLoop) {
        lists[ObjectIdentifier(loop)]?.add(handler, id: id)
    }

    /// On the handler's loop.
    func remove(id: UInt64, on loop: any EventLoop) {
        lists[ObjectIdentifier(loop)]?.remove(id: id)
    }

    /// Runs `body` for every live connection, on each connection's loop; completes when every
    /// loop has run it.
    func forEach(_ body: @escaping @Sendable (ClientConnectionHandler, Int) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for list in lists.values {
                group.addTask {
                    try? await list.eventLoop.submit { list.forEach(body) }.get()
                }
            }
        }
    }

    /// Connections still open, all loops together.
    func count() async -> Int {
        var total = 0
        for list in lists.values {
            total += (try? await list.eventLoop.submit { list.count }.get()) ?? 0
        }
        return total
    }
}

/// One loop's connections. Confined to `eventLoop`: every access is made on it (checked in debug).
private final class LoopList: @unchecked Sendable {
    let eventLoop: any EventLoop
    private var handlers: [UInt64: ClientConnectionHandler] = [:]

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    var count: Int {
        eventLoop.assertInEventLoop()
        return handlers.count
    }

    func add(_ handler: ClientConnectionHandler, id: UInt64) {
        eventLoop.assertInEventLoop()
        handlers[id] = handler
    }

    func remove(id: UInt64) {
        eventLoop.assertInEventLoop()
        handlers[id] = nil
    }

    func forEach(_ body: (ClientConnectionHandler, Int) -> Void) {
        eventLoop.assertInEventLoop()
        for (index, handler) in handlers.values.enumerated() { body(handler, index) }
    }
}
