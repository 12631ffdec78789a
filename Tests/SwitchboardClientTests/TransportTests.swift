import Foundation
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOWebSocket
@testable import SwitchboardClient
import SwitchboardProtocol
import SwitchboardServer
import Testing

/// The connection handler on an `EmbeddedChannel`, and `wss://` against a real TLS server.
@Suite("SDK transport")
struct TransportTests {
    final class Delegate: SessionChannelDelegate {
        var frames: [InboundFrame] = []
        var lost: [(SwitchboardError, UInt16?)] = []
        var current = true

        func connection(_ id: ConnectionID, received frame: InboundFrame) { frames.append(frame) }
        func connection(_ id: ConnectionID, lost error: SwitchboardError, closeCode: UInt16?) {
            lost.append((error, closeCode))
        }
        func isCurrent(_ id: ConnectionID) -> Bool { current }
    }

    func channel(_ delegate: Delegate, establish: TimeAmount = .seconds(5)) throws -> EmbeddedChannel {
        let handler = SessionChannelHandler(id: ConnectionID(rawValue: 1), delegate: delegate, establishTimeout: establish)
        let channel = EmbeddedChannel(handler: handler, loop: EmbeddedEventLoop())
        return channel
    }

    func ping(_ seq: UInt64, on channel: EmbeddedChannel) throws {
        var payload = channel.allocator.buffer(capacity: 8)
        payload.writeInteger(seq)
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: payload))
    }

    /// RFC 6455 §5.5.3: the pong carries the ping's payload, which the server reads as the seq the
    /// client has read through (docs/protocol.md note 9).
    @Test func aPingIsAnsweredWithItsOwnPayload() throws {
        let delegate = Delegate()
        let channel = try channel(delegate)
        try ping(41, on: channel)
        let pong = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(pong.opcode == .pong)
        #expect(pong.maskKey != nil, "client frames are masked")
        var data = pong.data  // as written: the encoder masks it on the way out
        #expect(data.readInteger(as: UInt64.self) == 41)
        #expect(data.readableBytes == 0)
        _ = try channel.finish()
    }

    /// A connection that is no longer the SDK's does not acknowledge what it never delivered.
    @Test func aStaleConnectionDoesNotAcknowledge() throws {
        let delegate = Delegate()
        delegate.current = false
        let channel = try channel(delegate)
        try ping(7, on: channel)
        #expect(try channel.readOutbound(as: WebSocketFrame.self) == nil)
        _ = try channel.finish()
    }

    @Test func framesAreDecodedAndTheServersCloseIsEchoedAndReported() throws {
        let delegate = Delegate()
        let channel = try channel(delegate)
        let text = #"{"op":"event","seq":3,"event":"message","data":{"from":"a","to":"b","msgID":"m","payload":1,"time":5}}"#
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: text)))
        #expect(delegate.frames.count == 1)
        #expect(delegate.frames.first?.op == "event")
        var code = channel.allocator.buffer(capacity: 2)
        code.writeInteger(UInt16(4002))
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))
        let echo = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(echo.opcode == .connectionClose)
        channel.embeddedEventLoop.run()
        #expect(delegate.lost.count == 1)
        #expect(delegate.lost.first?.1 == 4002)
    }

    /// No login or resume reply in time, then silence once online: both end the connection.
    @Test func deadlinesEndTheConnection() throws {
        let delegate = Delegate()
        let loop = EmbeddedEventLoop()
        let handler = SessionChannelHandler(id: ConnectionID(rawValue: 1), delegate: delegate,
                                            establishTimeout: .seconds(2))
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        loop.advanceTime(by: .milliseconds(1500))
        try ping(0, on: channel)  // activity does not extend the establishment deadline
        loop.advanceTime(by: .milliseconds(600))
        #expect(delegate.lost.first?.0.code == SwitchboardError.connectTimeout.code)

        let online = Delegate()
        let loop2 = EmbeddedEventLoop()
        let handler2 = SessionChannelHandler(id: ConnectionID(rawValue: 2), delegate: online,
                                             establishTimeout: .seconds(2))
        let channel2 = EmbeddedChannel(handler: handler2, loop: loop2)
        try channel2.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        handler2.becameOnline(silenceLimit: .milliseconds(500))
        for _ in 0..<10 {
            loop2.advanceTime(by: .milliseconds(300))
            try ping(1, on: channel2)  // heard from every 300 ms: alive
        }
        #expect(online.lost.isEmpty)
        loop2.advanceTime(by: .milliseconds(600))
        #expect(online.lost.first?.0.code == SwitchboardError.networkDisconnected.code)
    }

    @Test func urlsAreParsed() throws {
        let plain = try Endpoint("ws://127.0.0.1:8080/ws")
        #expect(plain == Endpoint(host: "127.0.0.1", port: 8080, path: "/ws", secure: false))
        #expect(try Endpoint("wss://chat.example.com") == Endpoint(host: "chat.example.com", port: 443, path: "/ws", secure: true))
        #expect(try Endpoint("WS://[::1]:9000/ws?x=1") == Endpoint(host: "::1", port: 9000, path: "/ws?x=1", secure: false))
        for bad in ["http://x/ws", "ws://", "ws://host:0/ws", "ws://host:99999", "127.0.0.1:8080"] {
            #expect(throws: SwitchboardError.self, "\(bad)") { try Endpoint(bad) }
        }
    }

    @Test func wssLogsInAndCarriesMessages() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                             "-keyout", key, "-out", cert]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0, "openssl makes the test certificate")

        var config = serverConfiguration()
        config.tlsCertificate = cert
        config.tlsKey = key
        try await withServer(config) { _, port in
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cert))
            for host in ["127.0.0.1", "localhost"] {
                let manager = try makeManager(port: port, scheme: "wss", host: host) { $0.tls = tls }
                let inbox = Inbox(manager)
                try await manager.login(userID: "olga", userSig: makeSig("olga"))
                try await manager.send(to: "olga", payload: "over TLS")
                #expect(try await inbox.next(after: 0).payload == "over TLS")
                await manager.shutdown()
            }
            // The system's trust roots do not know this certificate.
            let untrusting = try makeManager(port: port, scheme: "wss")
            let error = await #expect(throws: SwitchboardError.self) {
                try await untrusting.login(userID: "olga", userSig: makeSig("olga"))
            }
            #expect(error?.code == SwitchboardError.connectFailed.code)
            // Plain ws:// to a TLS port fails cleanly too.
            let plain = try makeManager(port: port) { $0.connectTimeout = .seconds(1) }
            await #expect(throws: SwitchboardError.self) {
                try await plain.login(userID: "olga", userSig: makeSig("olga"))
            }
            await untrusting.shutdown()
            await plain.shutdown()
        }
    }
}
