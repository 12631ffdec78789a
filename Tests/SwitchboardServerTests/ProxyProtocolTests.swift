import NIOCore
import NIOEmbedded
@testable import SwitchboardServer
import Testing

@Suite("PROXY protocol header")
struct ProxyProtocolTests {
    func parse(_ bytes: [UInt8]) -> (ProxyProtocolHandler.Parsed, Int) {
        var buffer = ByteBuffer(bytes: bytes)
        let parsed = ProxyProtocolHandler.parse(&buffer)
        return (parsed, buffer.readableBytes)
    }

    func v2(command: UInt8 = 0x21, family: UInt8, address: [UInt8], extra: [UInt8] = []) -> [UInt8] {
        let body = address + extra
        return ProxyProtocolHandler.v2Signature + [command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    @Test func version1() {
        let line = Array("PROXY TCP4 203.0.113.7 10.0.0.1 51234 8080\r\nGET".utf8)
        #expect(parse(line) == (.header("203.0.113.7"), 3))  // what follows the header is left
        #expect(parse(Array("PROXY TCP6 2001:db8::1 ::1 51234 8080\r\n".utf8)).0 == .header("2001:db8::1"))
        #expect(parse(Array("PROXY UNKNOWN\r\n".utf8)).0 == .header(nil))
        // Not yet whole: wait for more, whatever the split.
        for cut in 1..<(line.count - 3) {
            #expect(parse(Array(line.prefix(cut))).0 == .needMore, "cut at \(cut)")
        }
        for bad in ["PROXY TCP4 nonsense 10.0.0.1 1 2\r\n", "PROXY TCP4 1.2.3.4 10.0.0.1 1\r\n",
                    "PROXY TCP4 1.2.3.4 10.0.0.1 1 2\n", "PROXY TCP5 1.2.3.4 10.0.0.1 1 2\r\n",
                    "PROXI TCP4", "GET / HTTP/1.1\r\n", "PROXY " + String(repeating: "x", count: 120)] {
            #expect(parse(Array(bad.utf8)).0 == .invalid, "\(bad)")
        }
    }

    @Test func version2() {
        let ipv4 = v2(family: 0x11, address: [203, 0, 113, 9, 10, 0, 0, 1, 0xC8, 0x22, 0x1F, 0x90])
        #expect(parse(ipv4 + [1, 2]) == (.header("203.0.113.9"), 2))
        let ipv6 = v2(family: 0x21, address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
                                         + Array(repeating: 0, count: 15) + [1] + [0, 1, 0, 2])
        #expect(parse(ipv6).0 == .header("2001:db8::1"))
        // LOCAL (the balancer's own health check), and TLVs after the addresses, are accepted.
        #expect(parse(v2(command: 0x20, family: 0x00, address: [])).0 == .header(nil))
        #expect(parse(v2(family: 0x11, address: [198, 51, 100, 1, 10, 0, 0, 1, 0, 1, 0, 2], extra: [0x04, 0, 1, 7])).0
            == .header("198.51.100.1"))
        for cut in 1..<ipv4.count {
            #expect(parse(Array(ipv4.prefix(cut))).0 == .needMore, "cut at \(cut)")
        }
        #expect(parse(v2(command: 0x11, family: 0x11, address: Array(repeating: 0, count: 12))).0 == .invalid)  // version 1
        #expect(parse(v2(command: 0x22, family: 0x11, address: Array(repeating: 0, count: 12))).0 == .invalid)  // command 2
        #expect(parse(v2(family: 0x11, address: [1, 2, 3])).0 == .invalid)  // too short for IPv4
        #expect(parse(v2(family: 0x11, address: Array(repeating: 0, count: 600))).0 == .invalid)  // too long
    }

    @Test func theHandlerPassesOnWhatFollowsAndLeaves() throws {
        let channel = EmbeddedChannel()
        let seen = NIOLoopBoundBox<String?>(nil, eventLoop: channel.eventLoop)
        let handler = ProxyProtocolHandler(timeout: .seconds(5)) { _, client in seen.value = client }
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.writeInbound(ByteBuffer(string: "PROXY TCP4 192.0.2.5 10.0.0.1 1 2"))
        #expect(seen.value == nil)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(string: "\r\nhello"))
        #expect(seen.value == "192.0.2.5")
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "hello"))
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.context(handler: handler) }
        try channel.writeInbound(ByteBuffer(string: "more"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "more"))
    }

    @Test func aConnectionWithoutAHeaderIsClosed() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(timeout: .seconds(5)) { _, _ in })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET /ws HTTP/1.1\r\n"))
        #expect(!channel.isActive)
    }
}
