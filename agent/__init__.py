"""Agent for commune PCs: collects host health and publishes it over MQTT.

Everything under agent/ must run on Python 3.8 (Windows 7 PCs) and import
only the standard library, psutil, paho-mqtt and tomli.
"""
