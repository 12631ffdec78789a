import NIOCore
import NIOWebSocket
import SwitchboardProtocol
@testable import SwitchboardServer
import Testing

@Suite("WebSocket frame parser")
struct WebSocketFrameParserTests {
    func events(_ chunks: [ByteBuffer], max: Int = 1024) -> [WebSocketFrameParser.Event] {
        var parser = WebSocketFrameParser(maxMessageBytes: max)
        var out: [WebSocketFrameParser.Event] = []
        for chunk in chunks {
            parser.append(chunk)
            while let event = parser.next() { out.append(event) }
            parser.finishRead(allocator: ByteBufferAllocator())
        }
        return out
    }

    @Test func wholeTextFrame() {
        #expect(events([maskedFrame(opcode: .text, payload: Array("hello".utf8))]) == [.text(Array("hello".utf8))])
    }

    @Test func frameSplitAcrossReadsAtEveryByte() {
        let whole = maskedFrame(opcode: .text, payload: Array(repeating: 0x61, count: 300))
        for cut in 1..<whole.readableBytes {
            let first = whole.getSlice(at: 0, length: cut)!
            let second = whole.getSlice(at: cut, length: whole.readableBytes - cut)!
            #expect(events([first, second]) == [.text(Array(repeating: 0x61, count: 300))], "cut at \(cut)")
        }
    }

    @Test func severalFramesInOneRead() {
        var buffer = maskedFrame(opcode: .text, payload: [0x31])
        var second = maskedFrame(opcode: .ping, payload: [9])
        var third = maskedFrame(opcode: .text, payload: [0x32])
        buffer.writeBuffer(&second)
        buffer.writeBuffer(&third)
        #expect(events([buffer]) == [.text([0x31]), .ping([9]), .text([0x32])])
    }

    @Test func fragmentsAreReassembledWithControlFramesBetween() {
        var buffer = maskedFrame(opcode: .text, payload: Array("he".utf8), fin: false)
        var ping = maskedFrame(opcode: .ping, payload: [])
        var middle = maskedFrame(opcode: .continuation, payload: Array("ll".utf8), fin: false)
        var last = maskedFrame(opcode: .continuation, payload: Array("o".utf8))
        buffer.writeBuffer(&ping)
        buffer.writeBuffer(&middle)
        buffer.writeBuffer(&last)
        #expect(events([buffer]) == [.ping([]), .text(Array("hello".utf8))])
    }

    @Test func oversizeIsRefusedFromTheHeaderAndAcrossFragments() {
        #expect(events([maskedFrame(opcode: .text, payload: Array(repeating: 1, count: 2000))], max: 1024)
                == [.violation(.frameTooBig, "message larger than 1024 bytes")])
        var buffer = maskedFrame(opcode: .text, payload: Array(repeating: 0x61, count: 600), fin: false)
        var more = maskedFrame(opcode: .continuation, payload: Array(repeating: 0x61, count: 600))
        buffer.writeBuffer(&more)
        #expect(events([buffer], max: 1024) == [.violation(.frameTooBig, "message larger than 1024 bytes")])
        // Exactly the limit fits.
        #expect(events([maskedFrame(opcode: .text, payload: Array(repeating: 0x61, count: 1024))], max: 1024).count == 1)
    }

    @Test func protocolViolations() {
        var unmasked = ByteBuffer()
        unmasked.writeBytes([0x81, 0x01, 0x61])
        #expect(events([unmasked]).first.map { if case .violation(.protocolError, _) = $0 { true } else { false } } == true)
        var reserved = maskedFrame(opcode: .text, payload: [0x61])
        reserved.setInteger(UInt8(0xC1), at: 0)  // RSV1
        #expect(events([reserved]).first.map { if case .violation(.protocolError, _) = $0 { true } else { false } } == true)
        let bigPing = maskedFrame(opcode: .ping, payload: Array(repeating: 0, count: 126))
        #expect(events([bigPing]).first.map { if case .violation(.protocolError, _) = $0 { true } else { false } } == true)
        let orphan = maskedFrame(opcode: .continuation, payload: [1])
        #expect(events([orphan]).first.map { if case .violation(.protocolError, _) = $0 { true } else { false } } == true)
        var unknown = maskedFrame(opcode: .text, payload: [])
        unknown.setInteger(UInt8(0x83), at: 0)
        #expect(events([unknown]).first.map { if case .violation(.protocolError, _) = $0 { true } else { false } } == true)
    }

    @Test func closeFrames() {
        #expect(events([maskedFrame(opcode: .connectionClose, payload: [])]) == [.close(nil, reasonIsValid: true)])
        #expect(events([maskedFrame(opcode: .connectionClose, payload: [0x03, 0xE8, 0x61])]) == [.close(1000, reasonIsValid: true)])
    }

    @Test func binaryIsReported() {
        #expect(events([maskedFrame(opcode: .binary, payload: [1, 2])]) == [.binary([1, 2])])
    }
}
