"""The Streamlit demo app (``streamlit run app/ui/Home.py``) and its client for the bot's REST channel."""
