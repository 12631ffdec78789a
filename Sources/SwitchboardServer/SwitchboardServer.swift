public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchboardCluster
import NIOSSL
import NIOWebSocket
public import SwitchboardCore
import Synchronization

/// The gateway process: the WebSocket listener (`GET /ws`) and the admin listener, on SwiftNIO's
/// epoll event loops, one per core.
public final class SwitchboardServer: Sendable {
    public let gateway: Gateway
    public let group: MultiThreadedEventLoopGroup
    private let ownsGroup: Bool
    private let channels = Mutex<[any Channel]>([])
    private let draining = Atomic<Bool>(false)
    private let registry: ConnectionRegistry
    let limits: AddressLimits

    public init(configuration: ServerConfiguration, clock: any WallClock = SystemClock(), logger: Logger,
                group: MultiThreadedEventLoopGroup? = nil) {
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        self.ownsGroup = group == nil
        self.gateway = Gateway(configuration: configuration, group: self.group, clock: clock, logger: logger)
        self.registry = ConnectionRegistry(group: self.group)
        self.limits = AddressLimits(
            configuration: .init(maxConnections: configuration.maxConnectionsPerAddress,
                                 maxFailedLogins: configuration.maxFailedLogins),
            clock: clock)
    }

    public var configuration: ServerConfiguration { gateway.configuration }

    /// Binds both listeners. Port 0 picks a free port: read it back from `webSocketAddress`.
    public func start() async throws {
        let tls = try makeTLSContext()
        let webSocket = try await bindWebSocket(tls: tls)
        let admin = try await bindAdmin()
        channels.withLock { $0 = [webSocket, admin] }
        if let port = webSocket.localAddress?.port { gateway.webSocketListening(port: port) }
        gateway.cluster?.start(nodeID: gateway.nodeID)
        gateway.logger.info("listening", metadata: [
            "listen": "\(webSocket.localAddress.map(String.init(describing:)) ?? "?")",
            "admin": "\(admin.localAddress.map(String.init(describing:)) ?? "?")",
            "tls": "\(tls != nil)",
        ])
    }

    public var webSocketAddress: SocketAddress? { channels.withLock { $0.first?.localAddress } }
    public var adminAddress: SocketAddress? { channels.withLock { $0.count > 1 ? $0[1].localAddress : nil } }

    /// SIGTERM: stop accepting, fail `/readyz`, tell every client to resume elsewhere (`reconnect`,
    /// spread over most of `drainTimeout` so they do not all come back at once), close each with
    /// 1001 at its time, then shut down — before `drainTimeout` is up.
    public func drain() async throws {
        draining.store(true, ordering: .relaxed)
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int64(configuration.drainTimeoutSeconds * 1000))
        if let listener = channels.withLock({ $0.first }) {
            try? await listener.close()
        }
        let window = max(0, Int64(configuration.drainTimeoutSeconds * 1000) - 1000) * 8 / 10
        let open = await registry.count()
        gateway.logger.info("draining", metadata: ["connections": "\(open)", "window.ms": "\(window)"])
        await registry.forEach { handler, _ in
            // Never next to nothing: a client that moves at a random moment within `after` must
            // have time to do so before the 1001 (at least a quarter of the window).
            handler.drain(afterMillis: window == 0 ? 0 : Int64.random(in: (window / 4)...window))
        }
        while clock.now < deadline - .milliseconds(500), await registry.count() > 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        try await shutdown()
    }

    /// Stops listening and closes every connection (sessions detach), then stops the loops.
    public func shutdown() async throws {
        draining.store(true, ordering: .relaxed)
        let listeners = channels.withLock { list in
            defer { list = [] }
            return list
        }
        for channel in listeners {
            try? await channel.close()
        }
        // Sessions still held here detach in the store before its connections close.
        await gateway.cluster?.shutdown()
        gateway.close()
        if ownsGroup {
            try await group.shutdownGracefully()
        }
    }

    private func makeTLSContext() throws -> NIOSSLContext? {
        guard let certificate = configuration.tlsCertificate, let key = configuration.tlsKey else { return nil }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
        let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        let tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: chain,
                                                                        privateKey: .privateKey(privateKey))
        return try NIOSSLContext(configuration: tlsConfiguration)
    }

    private func bindWebSocket(tls: NIOSSLContext?) async throws -> any Channel {
        let gateway = self.gateway
        let registry = self.registry
        let limits = self.limits
        let maxFrame = configuration.maxFrameBytes
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
            // Each channel keeps its last read buffer for reuse: start it small, so an idle
            // connection holds a few hundred bytes, and let busy ones grow it.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256,
                                                                                       maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configureClientPipeline(channel: channel, gateway: gateway, tls: tls, maxFrame: maxFrame,
                                                     registry: registry, limits: limits)
                }
            }
            .bind(host: configuration.listen.host, port: configuration.listen.port)
            .get()
    }

    static func configureClientPipeline(channel: any Channel, gateway: Gateway, tls: NIOSSLContext?,
                                        maxFrame: Int, registry: ConnectionRegistry?, limits: AddressLimits?) throws {
        guard gateway.configuration.proxyProtocol else {
            try configureClientStages(channel: channel, addressKey: Self.addressKey(channel.remoteAddress),
                                      gateway: gateway, tls: tls, maxFrame: maxFrame, registry: registry, limits: limits)
            return
        }
        // Behind a balancer that speaks the PROXY protocol: the client's address comes first.
        let proxy = ProxyProtocolHandler(timeout: gateway.configuration.handshakeTimeout) { context, client in
            let key = client.map { AddressLimits.key(forAddressBytes: $0.utf8) } ?? Self.addressKey(context.channel.remoteAddress)
            try configureClientStages(channel: context.channel, addressKey: key, gateway: gateway, tls: tls,
                                      maxFrame: maxFrame, registry: registry, limits: limits)
        }
        try channel.pipeline.syncOperations.addHandler(proxy)
    }

    /// The pipeline after the client's address is known: TLS, HTTP, the upgrade, the connection.
    private static func configureClientStages(channel: any Channel, addressKey: UInt64, gateway: Gateway,
                                              tls: NIOSSLContext?, maxFrame: Int, registry: ConnectionRegistry?,
                                              limits: AddressLimits?) throws {
        let pipeline = channel.pipeline.syncOperations
        if let limits, !limits.acquireConnection(addressKey) {
            try pipeline.addHandler(TooManyConnectionsHandler())
            return
        }
        if let tls {
            try pipeline.addHandler(NIOSSLServerHandler(context: tls))
        }
        let fallback = HTTPFallbackHandler(webSocketPath: "/ws", handshakeTimeout: gateway.configuration.handshakeTimeout,
                                           limits: limits, addressKey: addressKey)
        let boundFallback = NIOLoopBound(fallback, eventLoop: channel.eventLoop)
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxFrame,
            automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                let path = Self.path(head)
                let accepted = path == "/ws" || (path == "/echo" && gateway.configuration.conformanceEcho)
                return channel.eventLoop.makeSucceededFuture(accepted ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if Self.path(head) == "/echo" {
                        try sync.addHandler(ConformanceEchoHandler())
                        let decoder = try sync.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                        sync.removeHandler(context: decoder, promise: nil)
                        limits?.releaseConnection(addressKey)  // echo connections are not gateway clients
                        return
                    }
                    try sync.addHandler(ClientConnectionHandler(gateway: gateway,
                                                                connectionID: gateway.makeConnectionID(),
                                                                registry: registry, limits: limits,
                                                                addressKey: addressKey))
                    // The connection handler parses frames itself (see WebSocketFrameParser):
                    // the decoder NIO's upgrader adds goes before any byte reaches it.
                    let decoder = try sync.context(handlerType: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                    sync.removeHandler(context: decoder, promise: nil)
                }
            })
        try pipeline.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                // Upgraded: the connection handler now owns the connection's place at its address.
                boundFallback.value.handedOff = true
                context.pipeline.syncOperations.removeHandler(boundFallback.value, promise: nil)
            }),
            withErrorHandling: true)
        try pipeline.addHandler(fallback)
    }

    static func path(_ head: HTTPRequestHead) -> String {
        head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
    }

    /// A client address as a limits key: a hash of its textual IP (the port is not part of it).
    static func addressKey(_ address: SocketAddress?) -> UInt64 {
        AddressLimits.key(forAddressBytes: (address?.ipAddress ?? "").utf8)
    }

    private func bindAdmin() async throws -> any Channel {
        let gateway = self.gateway
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        AdminHTTPHandler(gateway: gateway, isReady: { !self.isDraining && gateway.directory.isAvailable }))
                }
            }
            .bind(host: configuration.admin.host, port: configuration.admin.port)
            .get()
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }
}
