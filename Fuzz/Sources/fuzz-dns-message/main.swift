import FuzzDriver
import SluiceDNSWire

// DNS messages: a client's query (what the dns worker answers or refuses) and an upstream's answer.
runFuzzer { input in
    _ = DNSQuery.parse(input)
    _ = DNSResponse.parseUpstream(Array(input))
}
