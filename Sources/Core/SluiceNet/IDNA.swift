/// IDNA ToASCII for names in configs: what a resolver sends for a name a user wrote in Unicode.
///
/// A subset of UTS #46 processing that covers names as people write them: the ideographic and
/// full-width full stops separate labels, the name is lowercased (Unicode default case mapping)
/// and put in Normalization Form C, and each label with non-ASCII characters becomes `xn--` plus
/// its Punycode. Not done: UTS #46's mapping table (NFKC folding of compatibility characters,
/// removal of ignorables) and the bidi/contextual checks; names from DNS are already ASCII.
public enum IDNA {
    /// The ASCII form of `name`; ASCII names come back lowercased and otherwise unchanged. nil
    /// when a label cannot be encoded or its encoding is longer than 63 bytes.
    public static func toASCII(_ name: some StringProtocol) -> String? {
        if name.utf8.allSatisfy({ $0 < 0x80 }) { return name.lowercased() }
        var unified = String.UnicodeScalarView()
        for scalar in name.unicodeScalars {
            switch scalar.value {
            case 0x3002, 0xFF0E, 0xFF61: unified.append(".")
            default: unified.append(scalar)
            }
        }
        // `_nfcCodeUnits` is the standard library's own NFC (the one String comparison uses); there is
        // no public spelling of it without Foundation.
        let normalized = String(decoding: String(unified).lowercased()._nfcCodeUnits, as: UTF8.self)
        var labels: [String] = []
        for label in normalized.split(separator: ".", omittingEmptySubsequences: false) {
            if label.utf8.allSatisfy({ $0 < 0x80 }) {
                labels.append(String(label))
                continue
            }
            guard let encoded = Punycode.encode(label), encoded.utf8.count + 4 <= 63 else { return nil }
            labels.append("xn--" + encoded)
        }
        return labels.joined(separator: ".")
    }
}
