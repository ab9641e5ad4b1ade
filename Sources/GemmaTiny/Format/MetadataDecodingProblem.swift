import Foundation

/// One line saying why the metadata JSON did not decode, naming the field.
///
/// Foundation's JSONDecoder reports a number its field's type cannot hold (1e60 for a Float,
/// 1e30 for an Int) as "The given data was not valid JSON.", with no path: for that case the
/// JSON is parsed again, untyped, to find the number.
enum MetadataDecodingProblem {
    static func describe(_ error: any Error, json: Data) -> String {
        guard let error = error as? DecodingError else { return firstLine("\(error)") }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing \(path(context.codingPath + [key]))"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): null where \(type) was expected"
        case .dataCorrupted(let context):
            if let tree = try? JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed]),
               let (keys, value) = outOfRangeNumber(in: tree, at: []) {
                return "\(keys.isEmpty ? "a value" : keys.joined(separator: ".")): \(value) is out of range"
            }
            let place = context.codingPath.isEmpty ? "" : path(context.codingPath) + ": "
            return place + firstLine(context.debugDescription)
        @unknown default:
            return firstLine("\(error)")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func firstLine(_ text: String) -> String {
        text.split(separator: "\n").first.map(String.init) ?? "undecodable JSON"
    }

    /// The first number (depth first, keys sorted) that no metadata field can hold: beyond
    /// Int64 (and so far beyond any count or float this format stores), or not finite.
    private static func outOfRangeNumber(in value: Any, at keys: [String]) -> ([String], String)? {
        switch value {
        case let object as [String: Any]:
            for key in object.keys.sorted() {
                if let found = outOfRangeNumber(in: object[key]!, at: keys + [key]) { return found }
            }
        case let array as [Any]:
            for (i, element) in array.enumerated() {
                if let found = outOfRangeNumber(in: element, at: keys + ["[\(i)]"]) { return found }
            }
        case let number as NSNumber:
            let v = number.doubleValue
            if !(abs(v) < 9.2e18) { return (keys, "\(v)") }
        default:
            break
        }
        return nil
    }
}
