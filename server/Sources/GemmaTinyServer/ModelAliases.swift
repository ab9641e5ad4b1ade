/// The model names the API accepts: the model id, then the aliases
/// (``GemmaServerConfiguration/modelAliases``), so that clients hard-wired to another name
/// (`gpt-4o-mini`) work. Replies name the model by its id, as OpenAI names the model a
/// request's alias resolved to.
extension GemmaServer {
    /// The model id, then each alias once; `/v1/models` lists them all.
    public var acceptedModelNames: [String] {
        var names = [modelId]
        for alias in configuration.modelAliases where !names.contains(alias) { names.append(alias) }
        return names
    }

    /// True for the model id or an alias.
    func acceptsModel(_ name: String) -> Bool {
        name == modelId || configuration.modelAliases.contains(name)
    }
}
