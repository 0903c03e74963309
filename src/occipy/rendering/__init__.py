"""Renderings: text/plain, text/occi, text/uri-list and application/occi+json (GFD.229, GFD.226). No I/O."""
