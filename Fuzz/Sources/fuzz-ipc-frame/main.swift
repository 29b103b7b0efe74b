import FuzzDriver
import IPC

// The IPC frame decoder and message codec: any bytes a peer worker or a control client could send, fed in two
// pieces (the first byte picks the split); every decoded message is encoded again.
runFuzzer { input in
    let bytes = Array(input)
    var decoder = FrameDecoder(maxPayload: 1 << 16)
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    decoder.feed(bytes[..<split])
    decoder.feed(bytes[split...])
    while let frame = try? decoder.nextFrame() {
        guard let message = try? frame.message() else { continue }
        _ = message.encodedPayload()
    }
}
