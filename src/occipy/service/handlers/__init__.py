"""Request handlers: `async def handler(env, ctx, route, message) -> Result`, one module per concern."""
