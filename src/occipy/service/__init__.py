"""GFD.223 semantics, sans-IO: OcciRequest in, OcciResponse out (`pipeline.Service`)."""
