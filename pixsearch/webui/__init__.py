"""What the Streamlit web app needs besides widgets: a search API client and pipeline progress.

Nothing here searches: queries go to the search API over HTTP, and pipeline
progress is read from the object store and queues through the library.
"""
