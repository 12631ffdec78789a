import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy on loopback between the SDK and the server that breaks connections on demand:
///
/// - `cut`: both sides closed (FIN);
/// - `reset`: both sides reset (RST, as a crashed middlebox would);
/// - `stall`: nothing forwarded for a while, then everything held is delivered (and a close
///   that came meanwhile passed on after it);
/// - `blackHole`: everything dropped in silence and closes not passed on: only a heartbeat
///   notices, on either side.
///
/// It can also refuse new connections (the server unreachable) and be pointed at another server.
final class FaultProxy: Sendable {
    enum Fault: String, CaseIterable, Sendable {
        case cut
        case reset
        case stall
        case blackHole
    }

    private struct State {
        var target: SocketAddress
        var pairs: [ProxyPair] = []
        var refusing = false
        var accepted = 0
    }

    let group: any EventLoopGroup
    private let state: Mutex<State>
    private let listener: Mutex<(any Channel)?> = Mutex(nil)

    private init(target: SocketAddress, group: any EventLoopGroup) {
        self.group = group
        self.state = Mutex(State(target: target))
    }

    static func start(target port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton)
        async throws -> FaultProxy
    {
        let proxy = FaultProxy(target: try SocketAddress(ipAddress: "127.0.0.1", port: port), group: group)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try proxy.accept(channel) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        proxy.listener.withLock { $0 = channel }
        return proxy
    }

    var port: Int { listener.withLock { $0?.localAddress?.port ?? 0 } }
    /// Connections accepted (refused ones included).
    var accepted: Int { state.withLock { $0.accepted } }

    func retarget(port: Int) throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        state.withLock { $0.target = address }
    }

    /// While on, new connections are closed as soon as they are accepted.
    func refuse(_ on: Bool) {
        state.withLock { $0.refusing = on }
    }

    /// Applies `fault` to the newest connection that is still forwarding.
    /// - Returns: false when there was none.
    @discardableResult
    func inject(_ fault: Fault, stall: TimeAmount = .milliseconds(300)) async -> Bool {
        let pairs = state.withLock { state in
            state.pairs.removeAll { $0.isFinished }
            return state.pairs
        }
        for pair in pairs.reversed() {
            if (try? await pair.inject(fault, stall: stall)) == true { return true }
        }
        return false
    }

    /// Cuts every connection (FIN), as a restart of the path would.
    func cutAll() async {
        let pairs = state.withLock { $0.pairs }
        for pair in pairs {
            _ = try? await pair.inject(.cut, stall: .zero)
        }
    }

    func shutdown() async {
        let channel = listener.withLock { $0 }
        try? await channel?.close()
        await cutAll()
    }

    private func accept(_ inbound: any Channel) throws {
        let (target, refusing) = state.withLock { state -> (SocketAddress, Bool) in
            state.accepted += 1
            return (state.target, state.refusing)
        }
        if refusing {
            inbound.close(promise: nil)
            return
        }
        let pair = ProxyPair(client: inbound)
        state.withLock { $0.pairs.append(pair) }
        try inbound.pipeline.syncOperations.addHandler(ProxySideHandler(pair: pair, side: .client))
        ClientBootstrap(group: inbound.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(ProxySideHandler(pair: pair, side: .server))
                }
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success(let outbound): pair.serverConnected(outbound)
                case .failure: pair.serverFailed()
                }
            }
    }
}

/// One proxied connection: the SDK's side and the server's, on one event loop.
final class ProxyPair: Sendable {
    enum Side: Sendable {
        case client
        case server
    }

    private enum Mode {
        case forwarding
        case stalled
        case blackHoled
        case finished
    }

    private struct State {
        var client: any Channel
        var server: (any Channel)?
        var mode = Mode.forwarding
        var toServer: [ByteBuffer] = []
        var toClient: [ByteBuffer] = []
        var clientClosed = false
        var serverClosed = false
        /// A close that came during a stall, passed on when the stall ends.
        var closeServerLater = false
        var closeClientLater = false
    }

    let loop: any EventLoop
    private let state: NIOLoopBoundBox<State>
    private let finished = Atomic<Bool>(false)

    init(client: any Channel) {
        self.loop = client.eventLoop
        self.state = NIOLoopBoundBox(State(client: client), eventLoop: client.eventLoop)
    }

    var isFinished: Bool { finished.load(ordering: .relaxed) }

    func serverConnected(_ server: any Channel) {
        state.value.server = server
        if state.value.mode == .finished || (state.value.clientClosed && state.value.mode == .forwarding) {
            server.close(promise: nil)
            return
        }
        if state.value.mode == .forwarding { flush() }
    }

    func serverFailed() {
        state.value.client.close(promise: nil)
    }

    func received(_ data: ByteBuffer, from side: Side) {
        switch state.value.mode {
        case .blackHoled, .finished:
            return
        case .stalled:
            append(data, from: side)
        case .forwarding:
            switch side {
            case .client:
                if let server = state.value.server {
                    server.writeAndFlush(data, promise: nil)
                } else {
                    state.value.toServer.append(data)
                }
            case .server:
                state.value.client.writeAndFlush(data, promise: nil)
            }
        }
    }

    func closed(_ side: Side) {
        switch side {
        case .client: state.value.clientClosed = true
        case .server: state.value.serverClosed = true
        }
        switch state.value.mode {
        case .forwarding:
            switch side {
            case .client: state.value.server?.close(promise: nil)
            case .server: state.value.client.close(promise: nil)
            }
        case .stalled:
            switch side {
            case .client: state.value.closeServerLater = true
            case .server: state.value.closeClientLater = true
            }
        case .blackHoled, .finished:
            break  // a black hole passes nothing on, closes included
        }
        if state.value.clientClosed && (state.value.serverClosed || state.value.server == nil) {
            state.value.mode = .finished
            finished.store(true, ordering: .relaxed)
        }
    }

    /// - Returns: false when the connection was not forwarding (already broken or gone).
    func inject(_ fault: FaultProxy.Fault, stall: TimeAmount) async throws -> Bool {
        try await loop.submit { [self] in
            guard state.value.mode == .forwarding, !state.value.clientClosed, !state.value.serverClosed else {
                return false
            }
            switch fault {
            case .cut:
                state.value.mode = .finished
                closeBoth()
            case .reset:
                state.value.mode = .finished
                for channel in [state.value.client] + (state.value.server.map { [$0] } ?? []) {
                    if let provider = channel as? any SocketOptionProvider {
                        _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                    }
                }
                closeBoth()
            case .stall:
                state.value.mode = .stalled
                loop.assumeIsolated().scheduleTask(in: stall) { self.endStall() }
            case .blackHole:
                state.value.mode = .blackHoled
                state.value.toServer = []
                state.value.toClient = []
                // Both ends notice by their heartbeats; whatever is left is cleared away later.
                loop.assumeIsolated().scheduleTask(in: .seconds(10)) { self.closeBoth() }
            }
            return true
        }.get()
    }

    private func endStall() {
        guard state.value.mode == .stalled else { return }
        state.value.mode = .forwarding
        flush()
        if state.value.closeServerLater { state.value.server?.close(promise: nil) }
        if state.value.closeClientLater { state.value.client.close(promise: nil) }
    }

    private func flush() {
        if let server = state.value.server, !state.value.toServer.isEmpty {
            for data in state.value.toServer { server.write(data, promise: nil) }
            server.flush()
            state.value.toServer = []
        }
        if !state.value.toClient.isEmpty {
            for data in state.value.toClient { state.value.client.write(data, promise: nil) }
            state.value.client.flush()
            state.value.toClient = []
        }
    }

    private func append(_ data: ByteBuffer, from side: Side) {
        switch side {
        case .client: state.value.toServer.append(data)
        case .server: state.value.toClient.append(data)
        }
    }

    private func closeBoth() {
        finished.store(true, ordering: .relaxed)
        state.value.client.close(promise: nil)
        state.value.server?.close(promise: nil)
    }
}

/// Hands one side's bytes and end to its pair.
final class ProxySideHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let pair: ProxyPair
    private let side: ProxyPair.Side

    init(pair: ProxyPair, side: ProxyPair.Side) {
        self.pair = pair
        self.side = side
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pair.received(Self.unwrapInboundIn(data), from: side)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pair.closed(side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
