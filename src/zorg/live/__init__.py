"""zorg.live: live pages for Zope component-architecture sites."""
