import FuzzDriver
import SluiceSniffing

// A client's first bytes: TLS ClientHello (SNI) and HTTP request head (Host), and the combined sniffer.
runFuzzer { input in
    _ = TLSClientHello.serverName(in: input)
    _ = HTTPRequestHead.host(in: input)
    _ = Sniffing.sniff(input, kinds: Sniffing.Kind.allCases)
}
