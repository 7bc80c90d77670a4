"""A Zope 6 example: a chat with presence on any folder, and a folder
listing that every open page updates when an object is added."""
