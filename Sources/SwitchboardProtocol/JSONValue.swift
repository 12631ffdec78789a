// JSON data model used by the gateway: values, exact-text numbers and
// order-preserving objects. See JSONParser.swift and JSONWriter.swift.

/// A JSON value (RFC 8259).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number; keeps the exact source text (see `JSONNumber`).
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

// MARK: - JSONNumber

/// A JSON number stored as its exact text, so that integers beyond 64 bits and
/// decimals survive a parse/serialize round trip unchanged.
///
/// Equality and hashing compare the text: `1`, `1.0` and `1e0` are different
/// `JSONNumber`s even though they denote the same value.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The number's text: the exact source text when parsed, otherwise the
    /// canonical rendering of the value it was created from ("-12", "1.5", "1e+16").
    /// Always valid RFC 8259 number syntax.
    public let text: String

    /// Caller guarantees `text` matches the RFC 8259 number grammar.
    init(uncheckedText text: String) {
        self.text = text
    }

    public init(_ value: Int64) { text = String(value) }
    public init(_ value: UInt64) { text = String(value) }
    public init(_ value: Int) { text = String(value) }
    public init(integerLiteral value: Int) { text = String(value) }

    /// `nil` for NaN and infinities, which JSON cannot represent.
    /// The text is Swift's shortest round-tripping rendering ("0.1", "1e+16", "-0.0").
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        text = value.description
    }

    /// Validating initializer: `nil` unless `text` is exactly one RFC 8259
    /// number (no surrounding whitespace, no leading zeros, no "+", ...).
    public init?(text: String) {
        guard let parsed = try? JSONParser.parse(text, maxDepth: 0),
              case .number(let number) = parsed,
              number.text.utf8.count == text.utf8.count
        else { return nil }
        self = number
    }

    public var description: String { text }

    /// The value as `Int64` if it is an integer in range, otherwise `nil`.
    ///
    /// Exactness is decided on the decimal value, not the spelling: "1.0",
    /// "1e2" and "150e-1" give 1, 100 and 15; "1.5", "1e-2" and anything outside
    /// the Int64 range give `nil`. "-0" gives 0.
    public var int64: Int64? {
        guard let (negative, magnitude) = exactInteger() else { return nil }
        if negative {
            if magnitude <= UInt64(Int64.max) { return -Int64(magnitude) }
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The value as `UInt64` if it is a non-negative integer in range
    /// (same exactness rules as `int64`; "-0" gives 0), otherwise `nil`.
    public var uint64: UInt64? {
        guard let (negative, magnitude) = exactInteger() else { return nil }
        if negative && magnitude != 0 { return nil }
        return magnitude
    }

    /// The nearest `Double`. Magnitudes beyond `Double` range give ±infinity,
    /// tiny values round to ±0.
    public var double: Double {
        // Fast path: short plain integers are exact in a Double.
        var small: Int64 = 0
        var negative = false
        var isSmallInteger = true
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "-") {
                negative = true
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") && digits < 15 {
                small = small * 10 + Int64(byte &- UInt8(ascii: "0"))
                digits += 1
            } else {
                isSmallInteger = false
                break
            }
        }
        if isSmallInteger {
            // "-0" must stay negative zero.
            return negative ? -Double(small) : Double(small)
        }
        return Double(text) ?? 0
    }

    private static func digits(of value: UInt64) -> [UInt8] {
        value == 0 ? [] : Array(String(value).utf8).map { $0 &- UInt8(ascii: "0") }
    }

    /// Decomposes the text into sign and exact integer magnitude, or `nil` if the
    /// value is not an integer or its magnitude exceeds `UInt64`.
    private func exactInteger() -> (negative: Bool, magnitude: UInt64)? {
        var negative = false
        // Digits of integer and fraction parts, concatenated, with the number of
        // fraction digits; then the exponent.
        var mantissa: [UInt8] = []
        var fractionDigits = 0
        var exponent = 0
        var exponentNegative = false
        var state = 0  // 0 integer part, 1 fraction, 2 exponent
        var fast: UInt64 = 0
        var fastValid = true
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "-"):
                if state == 2 { exponentNegative = true } else { negative = true }
            case UInt8(ascii: "+"):
                break
            case UInt8(ascii: "."):
                state = 1
                if fastValid { fastValid = false; mantissa = Self.digits(of: fast) }
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                state = 2
                if fastValid { fastValid = false; mantissa = Self.digits(of: fast) }
            default:
                let digit = byte &- UInt8(ascii: "0")
                if state == 2 {
                    // Saturate: anything this large is out of range or zero anyway.
                    if exponent < 1_000_000 { exponent = exponent * 10 + Int(digit) }
                } else {
                    if fastValid {
                        let (m, o1) = fast.multipliedReportingOverflow(by: 10)
                        let (a, o2) = m.addingReportingOverflow(UInt64(digit))
                        if o1 || o2 {
                            fastValid = false
                            mantissa = Self.digits(of: fast)
                        } else {
                            fast = a
                        }
                    }
                    if !fastValid { mantissa.append(digit) }
                    if state == 1 { fractionDigits += 1 }
                }
            }
        }
        if fastValid && state == 0 { return (negative, fast) }
        // Drop leading zeros.
        var start = 0
        while start < mantissa.count && mantissa[start] == 0 { start += 1 }
        if start == mantissa.count { return (negative, 0) }
        var scale = (exponentNegative ? -exponent : exponent) - fractionDigits
        var endIndex = mantissa.count
        // Trailing zeros move into the scale.
        while endIndex > start && mantissa[endIndex - 1] == 0 {
            endIndex -= 1
            scale += 1
        }
        if scale < 0 { return nil }          // has a non-zero fractional part
        if endIndex - start + scale > 20 { return nil }  // more than 20 digits
        var value: UInt64 = 0
        for k in start..<endIndex {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(mantissa[k]))
            if o1 || o2 { return nil }
            value = a
        }
        for _ in 0..<scale {
            let (m, o) = value.multipliedReportingOverflow(by: 10)
            if o { return nil }
            value = m
        }
        return (negative, value)
    }
}

// MARK: - JSONObject

/// A JSON object: members in insertion (source) order with lookup by key.
///
/// Keys are unique (the parser rejects duplicates; setting an existing key
/// replaces its value in place). Keys compare with Swift `String` equality,
/// i.e. canonically equivalent Unicode spellings count as the same key.
/// Equality and hashing ignore member order, as JSON object semantics do.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public typealias Element = (key: String, value: JSONValue)

    private var entries: [Element]
    /// Key -> position, built only once the object is large enough for linear
    /// search to lose.
    private var index: [String: Int]?

    private static var indexThreshold: Int { 12 }

    public init() {
        entries = []
        index = nil
    }

    /// Builds an object from pairs in order. A repeated key replaces the earlier
    /// value in the earlier position.
    public init(_ pairs: [(String, JSONValue)]) {
        self.init()
        entries.reserveCapacity(pairs.count)
        for (key, value) in pairs { self[key] = value }
    }

    /// Same rules as `init(_:)`: a repeated key replaces the earlier value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// Member value for `key`. Setting a value replaces an existing member in
    /// place or appends a new one; setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let position = position(ofKey: key) else { return nil }
            return entries[position].value
        }
        set {
            if let newValue {
                if let position = position(ofKey: key) {
                    entries[position].value = newValue
                } else {
                    appendNew(key: key, value: newValue)
                }
            } else {
                removeValue(forKey: key)
            }
        }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var underestimatedCount: Int { entries.count }
    /// Keys in order.
    public var keys: [String] { entries.map(\.key) }
    /// Values in key order.
    public var values: [JSONValue] { entries.map(\.value) }

    public func makeIterator() -> IndexingIterator<[Element]> {
        entries.makeIterator()
    }

    public func contains(key: String) -> Bool {
        position(ofKey: key) != nil
    }

    /// Removes the member, keeping the order of the others. Returns the old value.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        guard let position = position(ofKey: key) else { return nil }
        let old = entries.remove(at: position).value
        rebuildIndex()
        return old
    }

    /// Creates an empty object with room for `capacity` members.
    init(reservingCapacity capacity: Int) {
        entries = []
        entries.reserveCapacity(capacity)
        index = nil
    }

    /// Appends a member whose key the caller knows is not present.
    mutating func appendNew(key: String, value: JSONValue) {
        entries.append((key: key, value: value))
        if index != nil {
            index![key] = entries.count - 1
        } else if entries.count > Self.indexThreshold {
            rebuildIndex()
        }
    }

    private func position(ofKey key: String) -> Int? {
        if let index { return index[key] }
        for position in entries.indices where entries[position].key == key {
            return position
        }
        return nil
    }

    private mutating func rebuildIndex() {
        guard entries.count > Self.indexThreshold else {
            index = nil
            return
        }
        var newIndex = [String: Int](minimumCapacity: entries.count)
        for (position, entry) in entries.enumerated() { newIndex[entry.key] = position }
        index = newIndex
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for entry in lhs.entries {
            guard let other = rhs[entry.key], other == entry.value else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent: sum of per-member hashes.
        var sum = 0
        for entry in entries {
            var memberHasher = Hasher()
            memberHasher.combine(entry.key)
            memberHasher.combine(entry.value)
            sum &+= memberHasher.finalize()
        }
        hasher.combine(entries.count)
        hasher.combine(sum)
    }

    /// The serialized JSON text.
    public var description: String { JSONValue.object(self).jsonString }
}

// MARK: - Accessors

extension JSONValue {
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var numberValue: JSONNumber? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// `numberValue?.int64` (exact integers only).
    public var int64Value: Int64? { numberValue?.int64 }

    /// `numberValue?.double`.
    public var doubleValue: Double? { numberValue?.double }

    /// Object member; `nil` if absent or if this is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// Array element; `nil` if out of range or if this is not an array.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return nil
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) {
        guard let number = JSONNumber(value) else {
            preconditionFailure("JSON cannot represent \(value)")
        }
        self = .number(number)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// A repeated key replaces the earlier value (see `JSONObject.init(_:)`).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The serialized JSON text.
    public var description: String { jsonString }
}
